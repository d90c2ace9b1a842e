"""TUF role keys on disk: Ed25519, PKCS#8 PEM, mode 0600, one file per role.

Online keys live in the repository's ``keys/`` folder (never served); offline keys
(root, top-level targets) in a separate folder that is only present for a ceremony.
Files are what python-tuf's ``CryptoSigner`` reads too (``file2:`` URIs), so an
operator can move a key to an HSM-backed securesystemslib signer without a format
change.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from provenance.errors import InputError

__all__ = ["generate_key", "key_path", "load_key"]


def key_path(directory: Path, role: str) -> Path:
    return directory / f"{role}.key"


def generate_key(directory: Path, role: str) -> CryptoSigner:
    """A new Ed25519 key for ``role``, written to ``directory`` (refuses to overwrite)."""
    path = key_path(directory, role)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{path} exists: refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return CryptoSigner(key)


def load_key(directory: Path, role: str) -> CryptoSigner:
    """The key of ``role`` from ``directory``."""
    path = key_path(directory, role)
    try:
        if path.stat().st_mode & 0o077:
            raise InputError(f"{path} is readable by others; run chmod 600 {path}")
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except OSError as e:
        raise InputError(f"cannot read the {role} key {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise InputError(f"{path} is not a PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: the {role} key must be Ed25519")
    return CryptoSigner(key)
