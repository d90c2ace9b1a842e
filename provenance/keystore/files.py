"""``--key`` and ``--cert`` files: a PKCS#8 private key and X.509 certificates.

apksigner documents DER PKCS#8 for ``--key``; PEM (``PRIVATE KEY``, ``ENCRYPTED PRIVATE
KEY`` and the traditional ``RSA/EC/DSA PRIVATE KEY`` forms) is accepted too because
that is what openssl hands people. ``--cert`` may hold several certificates, PEM
concatenated or DER back to back, the signer's first (as ``CertificateFactory`` reads).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from provenance.apk import der
from provenance.errors import DerError, KeystoreError

MAX_FILE = 16 * 1024 * 1024
_PEM_CERT = re.compile(
    rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----(.*?)"
    rb"-----END (?:X509 |TRUSTED )?CERTIFICATE-----",
    re.DOTALL,
)


def read_file(path: str, what: str) -> bytes:
    """The file's bytes, or a KeystoreError naming ``what`` it was meant to be."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise KeystoreError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > MAX_FILE:
        raise KeystoreError(f"{what} {path} is too large (over {MAX_FILE} bytes)")
    return data


def is_encrypted_pkcs8(data: bytes) -> bool:
    """True for an EncryptedPrivateKeyInfo (DER or PEM) rather than a plain key."""
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        return True
    if b"-----BEGIN" in data:
        return b"Proc-Type: 4,ENCRYPTED" in data
    try:
        top = der.parse(data, allow_trailing=True).expect(der.SEQUENCE).children()
    except DerError:
        return False
    # EncryptedPrivateKeyInfo: SEQUENCE { AlgorithmIdentifier, OCTET STRING };
    # PrivateKeyInfo starts with INTEGER version.
    return len(top) == 2 and top[0].is_(der.SEQUENCE) and top[1].is_(der.OCTET_STRING)


def load_private_key(data: bytes, path: str, passwords: list[str] | None) -> PrivateKeyTypes | None:
    """Parse the key; None when it is encrypted and no candidate password opens it."""
    pem = b"-----BEGIN" in data
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    if passwords is None:
        try:
            return loader(data, None)
        except TypeError:
            raise KeystoreError(f"private key {path} is encrypted: give its password") from None
        except Exception as e:  # ValueError, UnsupportedAlgorithm, ...
            raise KeystoreError(
                f"cannot load private key {path}: not a PKCS#8 RSA, EC or DSA key ({e})"
            ) from None
    for password in passwords:
        try:
            return loader(data, password.encode("utf-8"))
        except TypeError:
            # Not encrypted after all; apksigner refuses a password for a plain key.
            raise KeystoreError(
                f"private key {path} is not encrypted but a key password was given"
            ) from None
        except ValueError as e:
            # A wrong password usually fails the padding check ("bad decrypt"), but
            # about 1 in 256 times it decrypts to garbage that then fails to parse:
            # for an encrypted key both mean "this password does not open it".
            text = str(e).lower()
            if "password" in text or "decrypt" in text or is_encrypted_pkcs8(data):
                continue
            raise KeystoreError(f"cannot load private key {path}: {e}") from None
        except Exception as e:  # unsupported encryption scheme and the like
            raise KeystoreError(f"cannot load private key {path}: {e}") from None
    return None


def load_certificates(data: bytes, path: str) -> list[bytes]:
    """DER of each certificate in the file, in file order."""
    certs: list[bytes] = []
    if b"-----BEGIN" in data:
        for block in _PEM_CERT.finditer(data):
            body = [
                line
                for line in block.group(1).splitlines()
                if line.strip() and b":" not in line  # skip RFC 1421 headers
            ]
            try:
                raw = base64.b64decode(b"".join(body), validate=False)
                x509.load_der_x509_certificate(raw)
            except (ValueError, binascii.Error) as e:
                raise KeystoreError(f"cannot parse certificate in {path}: {e}") from None
            certs.append(raw)
    else:
        try:
            elements = der.parse_all(data)
        except DerError as e:
            raise KeystoreError(f"cannot parse certificate file {path}: {e}") from None
        for el in elements:
            try:
                encoded = der.to_der(el)
                x509.load_der_x509_certificate(encoded)
            except (ValueError, DerError) as e:
                raise KeystoreError(f"cannot parse certificate in {path}: {e}") from None
            # Keep the original bytes: the certificate is signed over them, and apksig
            # embeds what the file holds.
            certs.append(el.encoded)
    if not certs:
        raise KeystoreError(f"no X.509 certificate found in {path}")
    return certs
