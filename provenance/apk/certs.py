"""Certificates and signature primitives shared by every signing scheme.

Certificates keep their original encoding: Android compares signers by the exact
bytes of their certificates, so a parsed-and-re-encoded certificate must never
stand in for the one in the APK. Like the reference, a certificate that a strict
DER parser rejects is retried after canonical re-encoding of its BER structure.
RSA keys with a negative modulus (an old encoder bug) are accepted the way the
reference accepts them: the modulus is read as unsigned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from provenance.apk import der
from provenance.errors import DerError

OID_RSA = "1.2.840.113549.1.1.1"
OID_EC = "1.2.840.10045.2.1"
OID_DSA = "1.2.840.10040.4.1"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class CertificateError(Exception):
    """A certificate cannot be parsed (reported as a *_MALFORMED_CERTIFICATE issue)."""


class PublicKeyError(Exception):
    """A public key cannot be decoded for the requested key algorithm."""


class VerifyException(Exception):
    """Verification could not run (reported as a *_VERIFY_EXCEPTION issue)."""


@dataclass(frozen=True, eq=False)
class Certificate:
    """An X.509 certificate with its original encoding.

    Equality and hashing use the encoding, as ``X509Certificate.equals`` does.
    """

    encoded: bytes
    cert: x509.Certificate = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the encoding: the certificate digest Android shows."""
        return hashlib.sha256(self.encoded).hexdigest()

    @cached_property
    def subject(self) -> str:
        """Subject distinguished name in RFC 4514 form."""
        try:
            return self.cert.subject.rfc4514_string()
        except ValueError:
            return "<unparsable subject>"

    @cached_property
    def issuer(self) -> str:
        """Issuer distinguished name in RFC 4514 form."""
        try:
            return self.cert.issuer.rfc4514_string()
        except ValueError:
            return "<unparsable issuer>"

    @cached_property
    def serial_number(self) -> int:
        """The serial number, as signed (may be negative in old certificates)."""
        return _tbs_serial(self.encoded)

    @cached_property
    def spki(self) -> bytes:
        """SubjectPublicKeyInfo DER as the reference encodes the certificate's key."""
        return _cert_spki(self.encoded)

    @cached_property
    def public_key(self) -> PublicKeyTypes:
        """The certificate's public key."""
        return load_public_key(self.spki)

    @cached_property
    def key_algorithm(self) -> str:
        """'RSA', 'EC', 'DSA' or the key's OID."""
        return spki_algorithm(self.spki)

    @cached_property
    def key_size(self) -> int | None:
        """Key size in bits where it has one."""
        try:
            k = self.public_key
        except PublicKeyError:
            return None
        if isinstance(k, rsa.RSAPublicKey | dsa.DSAPublicKey):
            return k.key_size
        if isinstance(k, ec.EllipticCurvePublicKey):
            return k.curve.key_size
        return None


def load_certificate(encoded: bytes) -> Certificate:
    """Parse a DER (or BER, or PEM) certificate, keeping ``encoded`` as its identity."""
    try:
        return Certificate(encoded, x509.load_der_x509_certificate(encoded))
    except ValueError:
        pass
    if encoded.startswith(b"-----BEGIN CERTIFICATE-----"):
        try:
            c = x509.load_pem_x509_certificate(encoded)
            return Certificate(c.public_bytes(serialization.Encoding.DER), c)
        except ValueError as e:
            raise CertificateError(f"Failed to parse certificate: {e}") from None
    try:
        el = der.parse(encoded, allow_trailing=True)
        reencoded = der.to_der(el)
        c = x509.load_der_x509_certificate(reencoded)
        _ = c.signature_hash_algorithm  # force parsing of the fields Java checks
        return Certificate(el.encoded, c)
    except (DerError, ValueError, UnsupportedAlgorithm) as e:
        raise CertificateError(f"Failed to parse certificate: {e}") from None


def _tbs(encoded: bytes) -> list[der.Element]:
    cert = der.parse(encoded, allow_trailing=True).expect(der.SEQUENCE)
    tbs = cert.children()[0].expect(der.SEQUENCE).children()
    return tbs


def _tbs_serial(encoded: bytes) -> int:
    tbs = _tbs(encoded)
    i = 1 if tbs[0].is_(0, der.CLASS_CONTEXT) else 0
    return der.read_integer(tbs[i])


def _cert_spki(encoded: bytes) -> bytes:
    try:
        tbs = _tbs(encoded)
        i = 1 if tbs[0].is_(0, der.CLASS_CONTEXT) else 0
        spki = tbs[i + 5].expect(der.SEQUENCE)
    except (DerError, IndexError) as e:
        raise PublicKeyError(f"malformed certificate: {e}") from None
    return canonical_spki(der.to_der(spki))


def spki_algorithm(spki: bytes) -> str:
    """'RSA', 'EC', 'DSA' or the OID of a SubjectPublicKeyInfo."""
    try:
        alg = der.parse(spki).children()[0].children()[0]
        oid = der.read_oid(alg)
    except (DerError, IndexError):
        return "unknown"
    return {OID_RSA: "RSA", OID_EC: "EC", OID_DSA: "DSA"}.get(oid, oid)


def canonical_spki(spki: bytes) -> bytes:
    """Re-encode a SubjectPublicKeyInfo as Java's key classes would.

    Fixes a negative RSA modulus (read as unsigned, as the reference does) and
    otherwise lets ``cryptography`` produce the canonical encoding.
    """
    if spki_algorithm(spki) == "RSA":
        fixed = _fix_rsa_negative_modulus(spki)
        if fixed is not None:
            return fixed
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm):
        return spki
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _fix_rsa_negative_modulus(spki: bytes) -> bytes | None:
    try:
        outer = der.parse(spki).children()
        bits = outer[1].expect(der.BIT_STRING).content
        key = der.parse(bits[1:]).children()
        n = der.read_integer(key[0])
        e = der.read_integer(key[1])
    except (DerError, IndexError):
        return None
    if n >= 0:
        return None
    n_unsigned = int.from_bytes(key[0].content, "big")
    pub = rsa.RSAPublicNumbers(e, n_unsigned).public_key()
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(spki: bytes, key_type: str | None = None) -> PublicKeyTypes:
    """Decode a SubjectPublicKeyInfo, optionally requiring a key type ('RSA', 'EC', 'DSA')."""
    if key_type is not None and spki_algorithm(spki) != key_type:
        raise PublicKeyError(f"not a {key_type} public key")
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as e:
        fixed = _fix_rsa_negative_modulus(spki)
        if fixed is None:
            raise PublicKeyError(f"malformed public key: {e}") from None
        key = serialization.load_der_public_key(fixed)
    return key


def verify(
    key: PublicKeyTypes, key_type: str, hash_name: str, pad: str, data: bytes, sig: bytes
) -> bool:
    """Verify ``sig`` over ``data``; False when it does not verify.

    Raises :class:`VerifyException` when the key does not suit the algorithm.
    """
    h = _HASHES[hash_name]()
    try:
        if key_type == "RSA":
            if not isinstance(key, rsa.RSAPublicKey):
                raise VerifyException("key is not an RSA key")
            if pad == "pss":
                p: padding.AsymmetricPadding = padding.PSS(
                    mgf=padding.MGF1(_HASHES[hash_name]()), salt_length=h.digest_size
                )
            else:
                p = padding.PKCS1v15()
            key.verify(sig, data, p, h)
        elif key_type == "EC":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise VerifyException("key is not an EC key")
            key.verify(sig, data, ec.ECDSA(h))
        elif key_type == "DSA":
            if not isinstance(key, dsa.DSAPublicKey):
                raise VerifyException("key is not a DSA key")
            key.verify(sig, data, h)
        else:
            raise VerifyException(f"unsupported key type {key_type}")
    except InvalidSignature:
        return False
    except (ValueError, UnsupportedAlgorithm) as e:
        raise VerifyException(str(e)) from None
    return True
