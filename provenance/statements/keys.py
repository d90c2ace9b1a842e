"""Actor public keys: the two algorithms, key IDs, loading and signature checks.

Actors sign with Ed25519 or ECDSA P-256/SHA-256 (DER signatures, as Sigstore and
in-toto tooling produce them). A key's ID -- the DSSE ``keyid`` -- is the lowercase hex
SHA-256 of its DER SubjectPublicKeyInfo, the RFC 6962 log-ID convention Sigstore also
uses: anyone holding the public key computes it, and it does not depend on a name.
Public keys are stored in statements as base64 DER SPKI; for loading, PEM, DER and the
log's Ed25519 note verifier keys (``name+id+base64(0x01 || key)``) are accepted too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from provenance.errors import NoteError
from provenance.log.note import Ed25519Verifier, parse_verifier_key
from provenance.statements.errors import StatementFormatError

__all__ = [
    "ALGORITHMS",
    "ALG_ECDSA_P256",
    "ALG_ED25519",
    "PublicKey",
    "key_algorithm",
    "key_id",
    "load_public_key",
    "public_key_b64",
    "verify_signature",
]

ALG_ED25519 = "ed25519"
ALG_ECDSA_P256 = "ecdsa-p256-sha256"
ALGORITHMS = (ALG_ED25519, ALG_ECDSA_P256)

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey

_MAX_KEY_TEXT = 4096
_VKEY = re.compile(rb"[^+\s]+\+[0-9a-fA-F]{8}\+[A-Za-z0-9+/]+=*")


def _from_text(text: bytes) -> PublicKeyTypes:
    """Base64 DER SPKI, else an Ed25519 note verifier key."""
    try:
        return serialization.load_der_public_key(binascii.a2b_base64(text, strict_mode=True))
    except (ValueError, UnsupportedAlgorithm):
        if not _VKEY.fullmatch(text):
            raise
    verifier = parse_verifier_key(text.decode("utf-8"))
    if not isinstance(verifier, Ed25519Verifier):
        raise StatementFormatError("only Ed25519 (type 0x01) note keys are actor keys")
    return Ed25519PublicKey.from_public_bytes(verifier.public_key)


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_algorithm(key: object) -> str:
    """``ed25519`` or ``ecdsa-p256-sha256``; StatementFormatError for anything else."""
    if isinstance(key, Ed25519PublicKey):
        return ALG_ED25519
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ALG_ECDSA_P256
    raise StatementFormatError(
        f"unsupported actor key {type(key).__name__}: use Ed25519 or ECDSA P-256"
    )


def key_id(key: PublicKey) -> str:
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo."""
    key_algorithm(key)
    return hashlib.sha256(_spki(key)).hexdigest()


def public_key_b64(key: PublicKey) -> str:
    """Standard base64 of the DER SubjectPublicKeyInfo, as statements carry keys."""
    key_algorithm(key)
    return base64.b64encode(_spki(key)).decode("ascii")


def load_public_key(data: bytes | str) -> PublicKey:
    """A public key from PEM, DER, base64 DER SPKI or an Ed25519 note verifier key."""
    if len(data) > _MAX_KEY_TEXT:
        raise StatementFormatError("public key text is too long")
    try:
        if isinstance(data, bytes | bytearray) and data[:1] == b"\x30":
            key = serialization.load_der_public_key(bytes(data))
        else:
            text = (data.encode("utf-8") if isinstance(data, str) else bytes(data)).strip()
            if text.startswith(b"-----BEGIN"):
                key = serialization.load_pem_public_key(text)
            else:
                key = _from_text(text)
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeDecodeError, NoteError) as e:
        raise StatementFormatError(f"cannot load public key: {e}") from None
    key_algorithm(key)
    assert isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return key


def verify_signature(key: PublicKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies with ``key`` (never raises)."""
    try:
        if isinstance(key, Ed25519PublicKey):
            if len(signature) != 64:
                return False
            key.verify(signature, message)
        else:
            if len(signature) > 80:  # DER ECDSA P-256 is at most 72 bytes
                return False
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
