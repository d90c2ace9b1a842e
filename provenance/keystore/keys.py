"""A loaded signer: certificates plus a private key that can sign, wherever it lives.

The APK signer only ever needs the certificate chain, the key's type and size, its
SubjectPublicKeyInfo and a ``sign`` call; :class:`SignerKey` is that contract, with a
software implementation here (keys from files and keystores) and a PKCS#11 one in
:mod:`provenance.keystore.pkcs11` whose private key never leaves the token.

Signatures match what Java's ``Signature`` produces for apksig: RSA PKCS#1 v1.5 is
deterministic and byte-identical, PSS uses a salt as long as the hash and MGF1 with
the same hash, ECDSA and DSA return DER ``SEQUENCE { r, s }``.  ``deterministic=True``
on a DSA key gives RFC 6979 signatures as BouncyCastle's ``SHA256withDetDSA`` (what
``apksigner --deterministic-dsa-signing true`` uses).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from abc import ABC, abstractmethod
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from provenance.errors import KeystoreError

KeyType = Literal["RSA", "EC", "DSA"]
HASH_NAMES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
PADDINGS = ("pkcs1", "pss", "")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | dsa.DSAPublicKey

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def hash_algorithm(hash_name: str) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash for one of :data:`HASH_NAMES`."""
    try:
        return _HASHES[hash_name]()
    except KeyError:
        raise ValueError(f"unsupported hash {hash_name!r}; expected one of {HASH_NAMES}") from None


def public_key_type(key: PublicKey | PrivateKey) -> tuple[KeyType, int]:
    """("RSA" | "EC" | "DSA", size in bits) as Java reports them."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return "DSA", key.key_size
    raise KeystoreError(f"unsupported key algorithm {type(key).__name__}: not RSA, EC or DSA")


def certificate_public_key(cert: x509.Certificate) -> PublicKey:
    """The certificate's RSA, EC or DSA public key, else a KeystoreError."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeystoreError(f"cannot read the certificate's public key: {e}") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | dsa.DSAPublicKey):
        raise KeystoreError(
            f"certificate key algorithm {type(key).__name__} is not supported: "
            "APK signatures use RSA, EC or DSA"
        )
    return key


class SignerKey(ABC):
    """One signer's certificates and signing key, as the APK signer consumes them."""

    #: DER certificates, the signer's own first, then the rest of the chain.
    certificates: list[bytes]
    #: "RSA", "EC" or "DSA".
    key_type: KeyType
    #: Modulus bits (RSA), field size (EC) or p bits (DSA).
    key_size: int
    #: DER SubjectPublicKeyInfo of the signer certificate's key.
    public_key_spki: bytes
    #: apksigner's default v1 signer basename: --v1-signer-name, else the keystore alias,
    #: else the key file name up to its first dot (not yet made safe for JAR names).
    v1_signer_name: str
    #: Human-readable origin for messages ("PKCS#12 keystore release.jks, alias 'a'").
    source: str

    def __init__(self, certificates: list[bytes], v1_signer_name: str, source: str) -> None:
        if not certificates:
            raise KeystoreError(f"{source}: no certificate")
        self.certificates = certificates
        self.v1_signer_name = v1_signer_name
        self.source = source
        cert = x509.load_der_x509_certificate(certificates[0])
        self._public_key = certificate_public_key(cert)
        self.key_type, self.key_size = public_key_type(self._public_key)
        self.public_key_spki = self._public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.key_type}-{self.key_size} "
            f"v1_signer_name={self.v1_signer_name!r} source={self.source!r}>"
        )

    def __enter__(self) -> SignerKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook, most keys hold nothing
        """Release resources (a PKCS#11 session); software keys hold none."""

    def public_key(self) -> PublicKey:
        """The signer certificate's public key."""
        return self._public_key

    def certificate(self) -> x509.Certificate:
        """The signer certificate, parsed."""
        return x509.load_der_x509_certificate(self.certificates[0])

    def sign(
        self, data: bytes, hash_name: str, padding: str, *, deterministic: bool = False
    ) -> bytes:
        """Sign ``data`` (hashing it with ``hash_name``) as Java's ``Signature`` would.

        ``padding``: "pkcs1" or "pss" for RSA, "" for EC and DSA. ``deterministic``
        selects RFC 6979 for DSA (apksigner's ``--deterministic-dsa-signing``); it is
        ignored for RSA (already deterministic) and EC (apksig never asks for it).
        """
        hash_algorithm(hash_name)
        if padding not in PADDINGS:
            raise ValueError(f"unsupported padding {padding!r}; expected one of {PADDINGS}")
        if self.key_type == "RSA":
            if padding not in ("pkcs1", "pss"):
                raise ValueError("RSA keys sign with padding 'pkcs1' or 'pss'")
        elif padding:
            raise ValueError(f"{self.key_type} keys sign with padding ''")
        return self._sign(data, hash_name, padding, deterministic and self.key_type == "DSA")

    @abstractmethod
    def _sign(self, data: bytes, hash_name: str, padding: str, deterministic: bool) -> bytes:
        """Sign with validated arguments."""


class SoftwareSignerKey(SignerKey):
    """A private key held in memory (from a key file or a keystore file)."""

    def __init__(
        self,
        private_key: PrivateKey,
        certificates: list[bytes],
        v1_signer_name: str,
        source: str,
    ) -> None:
        super().__init__(certificates, v1_signer_name, source)
        ktype, _ = public_key_type(private_key)
        if ktype != self.key_type or not _same_public_key(private_key, self._public_key):
            raise KeystoreError(
                f"{source}: the certificate does not match the private key "
                f"(a {ktype} key, the certificate holds a {self.key_type} key)"
                if ktype != self.key_type
                else f"{source}: the certificate does not match the private key"
            )
        self._key = private_key
        self._lock = threading.Lock()

    def _sign(self, data: bytes, hash_name: str, padding_name: str, deterministic: bool) -> bytes:
        algo = hash_algorithm(hash_name)
        key = self._key
        try:
            if isinstance(key, rsa.RSAPrivateKey):
                if padding_name == "pss":
                    pad: padding.AsymmetricPadding = padding.PSS(
                        mgf=padding.MGF1(algo), salt_length=algo.digest_size
                    )
                else:
                    pad = padding.PKCS1v15()
                return key.sign(data, pad, algo)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key.sign(data, ec.ECDSA(algo))
            if deterministic:
                return deterministic_dsa_sign(key, data, hash_name)
            return key.sign(data, algo)
        except (ValueError, UnsupportedAlgorithm) as e:
            # e.g. a hash too large for a small RSA modulus: the caller picked it.
            raise KeystoreError(f"{self.source}: cannot sign with {hash_name}: {e}") from None


def _same_public_key(private_key: PrivateKey, public_key: PublicKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_key.public_key().public_bytes(*fmt) == public_key.public_bytes(*fmt)


def deterministic_dsa_sign(key: dsa.DSAPrivateKey, data: bytes, hash_name: str) -> bytes:
    """DSA with k from RFC 6979 section 3.2 (HMAC with the message hash), DER (r, s).

    Matches BouncyCastle's ``HMacDSAKCalculator`` behind ``SHA256withDetDSA``. The
    modular arithmetic is Python integers, not constant time; DSA is legacy in APK
    signing and the key is already in this process's memory.
    """
    numbers = key.private_numbers()
    x = numbers.x
    p = numbers.public_numbers.parameter_numbers.p
    q = numbers.public_numbers.parameter_numbers.q
    g = numbers.public_numbers.parameter_numbers.g
    h1 = hashlib.new(hash_name, data).digest()
    gen = _KGen(hash_name, x, q, h1)
    z = gen.bits2int(h1)
    for k in gen:
        r = pow(g, k, p) % q
        s = (pow(k, -1, q) * (z + x * r)) % q
        if r and s:
            return encode_dss_signature(r, s)
    raise AssertionError("unreachable")  # pragma: no cover - the generator is endless


class _KGen:
    """RFC 6979 section 3.2 steps b-h: an endless stream of candidate nonces k."""

    def __init__(self, hash_name: str, x: int, q: int, h1: bytes) -> None:
        self.hash_name, self.q, self.qlen = hash_name, q, q.bit_length()
        hlen = hashlib.new(hash_name).digest_size
        rlen = (self.qlen + 7) // 8
        z1 = self.bits2int(h1)
        bx = x.to_bytes(rlen, "big") + (z1 % q).to_bytes(rlen, "big")
        v = b"\x01" * hlen
        k = b"\x00" * hlen
        k = self._mac(k, v + b"\x00" + bx)
        v = self._mac(k, v)
        k = self._mac(k, v + b"\x01" + bx)
        v = self._mac(k, v)
        self.k, self.v = k, v

    def _mac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()

    def bits2int(self, b: bytes) -> int:
        """The leftmost qlen bits of ``b`` as an integer."""
        v = int.from_bytes(b, "big")
        blen = len(b) * 8
        return v >> (blen - self.qlen) if blen > self.qlen else v

    def __iter__(self) -> _KGen:
        return self

    def __next__(self) -> int:
        while True:
            t = b""
            while len(t) * 8 < self.qlen:
                self.v = self._mac(self.k, self.v)
                t += self.v
            cand = self.bits2int(t)
            # Step h.3's update, done for every candidate so that a retry after r or
            # s == 0 (RFC 6979 section 3.4) continues the same stream.
            self.k = self._mac(self.k, self.v + b"\x00")
            self.v = self._mac(self.k, self.v)
            if 0 < cand < self.q:
                return cand
