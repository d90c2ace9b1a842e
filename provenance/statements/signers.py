"""Actor signing keys behind one small protocol, opened from signer URIs.

A :class:`Signer` is anything with a ``key_id``, a ``public_key`` and ``sign(message)``
returning an Ed25519 signature or a DER ECDSA P-256/SHA-256 signature over the exact
message bytes (the DSSE PAE). Where the private key lives is named by a URI whose
scheme picks a factory from a registry:

``file:PATH`` (or a bare path)
    PKCS#8 PEM/DER, encrypted or not (``?pass=<spec>`` with apksigner's password specs
    ``pass:``, ``env:``, ``file:``), or the log's Ed25519 note key
    ``PRIVATE+KEY+name+id+base64(0x01 || seed)``.
``pkcs11:...``
    an RFC 7512 URI opened through :mod:`provenance.keystore` (module, token, PIN as
    there); the key is EC P-256 and never leaves the token. The keystore wants a
    certificate for the key: one on the token with the key's CKA_ID, or a file named
    by the vendor attribute ``x-cert-path=`` in the URI.
``awskms:``, ``gcpkms:``, ``azurekms:``, ``hashivault:``
    reserved. They raise :class:`SignerUnavailable` until a deployment registers a
    factory with :func:`register_signer_scheme` -- the extension point for KMS
    signers. Nothing here pretends to talk to a KMS.
"""

from __future__ import annotations

import binascii
import re
import urllib.parse
from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.errors import KeystoreError, NoteError
from provenance.keystore import PasswordRetriever, SignerKey, SignerKeySpec, load_signer
from provenance.keystore import files as key_files
from provenance.log.note import ALG_ED25519, parse_signer_key
from provenance.statements.errors import SignerUnavailable, StatementFormatError
from provenance.statements.keys import ALG_ECDSA_P256, PublicKey, key_algorithm, key_id

__all__ = [
    "KMS_SCHEMES",
    "KeySigner",
    "Pkcs11Signer",
    "Signer",
    "SignerFactory",
    "open_signer",
    "register_signer_scheme",
]

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class Signer(Protocol):
    """Signs with one actor key; ``key_id`` is the DSSE keyid of ``public_key``."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, message: bytes) -> bytes:
        """Ed25519 or DER ECDSA P-256/SHA-256 signature over ``message`` itself."""
        ...


SignerFactory = Callable[[str], Signer]
"""Builds a signer from a full signer URI (scheme included)."""


class KeySigner:
    """A private key in this process's memory (a file, or generated for tests/demos)."""

    def __init__(self, private_key: PrivateKey, source: str = "in-memory key") -> None:
        public = private_key.public_key()
        key_algorithm(public)
        self._key = private_key
        self._public = public
        self._key_id = key_id(public)
        self.source = source

    @classmethod
    def generate(cls, algorithm: str = "ed25519") -> KeySigner:
        """A fresh random key: ``ed25519`` or ``ecdsa-p256-sha256``."""
        if algorithm == ALG_ECDSA_P256:
            return cls(ec.generate_private_key(ec.SECP256R1()), "generated key")
        if algorithm == "ed25519":
            return cls(Ed25519PrivateKey.generate(), "generated key")
        raise StatementFormatError(f"unknown key algorithm {algorithm!r}")

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._key, Ed25519PrivateKey):
            return self._key.sign(message)
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))

    def close(self) -> None:
        """Nothing to release; present so every signer can be used the same way."""

    def __enter__(self) -> KeySigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; for writing development keys only."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"<KeySigner {self._key_id[:16]} source={self.source!r}>"


class Pkcs11Signer:
    """An EC P-256 key on a PKCS#11 token, used through :mod:`provenance.keystore`."""

    def __init__(self, key: SignerKey) -> None:
        public = key.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
            public.curve, ec.SECP256R1
        ):
            key.close()
            raise SignerUnavailable(
                f"{key.source}: actor keys on PKCS#11 tokens must be EC P-256 "
                f"(this is {key.key_type}-{key.key_size})"
            )
        self._signer_key = key
        self._public = public
        self._key_id = key_id(public)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._signer_key.sign(message, "sha256", "")

    def close(self) -> None:
        """Release the token session."""
        self._signer_key.close()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Pkcs11Signer {self._key_id[:16]} source={self._signer_key.source!r}>"


def _split_query(rest: str) -> tuple[str, dict[str, str]]:
    path, _, query = rest.partition("?")
    params: dict[str, str] = {}
    for item in query.split("&") if query else ():
        name, eq, value = item.partition("=")
        if not eq or name in params:
            raise SignerUnavailable(f"malformed signer URI parameter {name!r}")
        params[name] = urllib.parse.unquote(value)
    return urllib.parse.unquote(path), params


def _open_file(uri: str) -> Signer:
    rest = uri[5:] if uri[:5].lower() == "file:" else uri
    if rest.startswith("//"):
        host, _, after = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise SignerUnavailable(f"file: signer URI names a remote host {host!r}")
        rest = "/" + after
    path, params = _split_query(rest)
    if set(params) - {"pass"}:
        raise SignerUnavailable(f"unknown file: signer parameters {sorted(set(params) - {'pass'})}")
    try:
        blob = key_files.read_file(path, "actor key file")
        if blob.lstrip().startswith(b"PRIVATE+KEY+"):
            return _note_key(blob, path)
        passwords = None
        if "pass" in params:
            with PasswordRetriever() as r:
                passwords = r.get_passwords(params["pass"], f"password for {path}")
        elif key_files.is_encrypted_pkcs8(blob):
            raise SignerUnavailable(f"actor key {path} is encrypted: add ?pass=<spec>")
        key = key_files.load_private_key(blob, path, passwords)
    except KeystoreError as e:
        raise SignerUnavailable(str(e)) from None
    if key is None:
        raise SignerUnavailable(f"cannot decrypt actor key {path}: wrong password?")
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise SignerUnavailable(f"actor key {path} is not an Ed25519 or EC P-256 key")
    try:
        return KeySigner(key, f"key file {path}")
    except StatementFormatError as e:
        raise SignerUnavailable(f"actor key {path}: {e}") from None


def _note_key(blob: bytes, path: str) -> Signer:
    """The log's Ed25519 note signer key format, reused for actor keys."""
    text = blob.decode("utf-8", "replace").strip()
    try:
        parse_signer_key(text)  # validates name, key ID and type
    except NoteError as e:
        raise SignerUnavailable(f"actor key {path}: {e}") from None
    raw = binascii.a2b_base64(text.split("+", 4)[4])  # PRIVATE+KEY+name+id+key
    if raw[0] != ALG_ED25519:
        raise SignerUnavailable(f"actor key {path}: only Ed25519 note keys sign statements")
    return KeySigner(Ed25519PrivateKey.from_private_bytes(raw[1:]), f"note key file {path}")


_X_CERT = re.compile(r"[;?&]x-cert-path=([^;&?]*)", re.IGNORECASE)


def _open_pkcs11(uri: str) -> Signer:
    m = _X_CERT.search(uri)
    cert = urllib.parse.unquote(m.group(1)) if m else None
    try:
        key = load_signer(SignerKeySpec(name="actor key", ks=uri, cert=cert))
    except KeystoreError as e:
        raise SignerUnavailable(str(e)) from None
    return Pkcs11Signer(key)


KMS_SCHEMES = ("awskms", "gcpkms", "azurekms", "hashivault")


def _not_configured(scheme: str) -> SignerFactory:
    def factory(uri: str) -> Signer:
        raise SignerUnavailable(
            f"{scheme}: signers are not configured here. A deployment that keeps actor "
            f"keys in a KMS registers a factory with "
            f"provenance.statements.register_signer_scheme({scheme!r}, factory); the "
            "factory returns an object with key_id, public_key and sign(message) "
            "(see docs/statements.md)"
        )

    return factory


_PLACEHOLDERS: dict[str, SignerFactory] = {s: _not_configured(s) for s in KMS_SCHEMES}
_SCHEMES: dict[str, SignerFactory] = {
    "file": _open_file,
    "pkcs11": _open_pkcs11,
    **_PLACEHOLDERS,
}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def register_signer_scheme(scheme: str, factory: SignerFactory, *, replace: bool = False) -> None:
    """Make ``open_signer`` hand URIs of ``scheme`` to ``factory``.

    Reserved KMS schemes may be registered once; other existing schemes only with
    ``replace=True``, so a typo cannot silently shadow ``file`` or ``pkcs11``.
    """
    scheme = scheme.lower()
    if not _SCHEME.fullmatch(scheme + ":"):
        raise ValueError(f"invalid URI scheme {scheme!r}")
    current = _SCHEMES.get(scheme)
    placeholder = current is not None and current is _PLACEHOLDERS.get(scheme)
    if current is not None and not replace and not placeholder:
        raise ValueError(f"signer scheme {scheme!r} is already registered")
    _SCHEMES[scheme] = factory


def open_signer(uri: str) -> Signer:
    """Open the signer a URI names (a string without a scheme is a file path)."""
    m = _SCHEME.match(uri)
    scheme = m.group(1).lower() if m and len(m.group(1)) > 1 else "file"
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(sorted(_SCHEMES))
        raise SignerUnavailable(f"unknown signer URI scheme {scheme!r}; known: {known}")
    return factory(uri)
