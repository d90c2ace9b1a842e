"""Writing a source stamp: the ``stamp-cert-sha256`` entry and the V2 source stamp block.

The encoding follows apksig's ``V2SourceStampSigner`` and the stamp parts of
``DefaultApkSignerEngine``; what is signed per scheme is exactly what the verifier
(:mod:`provenance.apk.stamp`) checks, through its :func:`~provenance.apk.stamp.encode_digests`.

* The stamp signs, for each scheme the APK is signed with (v3, v2, v1 -- apksig never
  signs v3.1 digests), that scheme's content digests: v2/v3 the digests their own
  signers computed, v1 ``{4: SHA-256(META-INF/MANIFEST.MF)}``.
* The stamp key always signs with ``RSA_PKCS1_V1_5_WITH_SHA256`` (apksig
  ``createSourceStampSignerConfig`` hard-codes it), so only RSA stamp keys work.
* Attributes: the stamp key's lineage (sub-lineage up to the stamp certificate) and
  the signing time in epoch seconds, in the order of apksig's ``HashMap``.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from provenance.apk import certs
from provenance.apk import lineage as lin
from provenance.apk.algorithms import SignatureAlgorithm, find_by_id
from provenance.apk.sign_block import SignerKey, UnsupportedKeyError, lp, lp_pairs, lp_seq
from provenance.apk.sign_block import sign_checked as _sign_checked
from provenance.apk.signing_block import SOURCE_STAMP_V2_BLOCK_ID
from provenance.apk.stamp import (
    PROOF_OF_ROTATION_ATTR_ID,
    STAMP_CERT_ENTRY,
    STAMP_TIME_ATTR_ID,
    VERSION_APK_SIGNATURE_SCHEME_V2,
    VERSION_APK_SIGNATURE_SCHEME_V3,
    VERSION_JAR_SIGNATURE_SCHEME,
    DigestMap,
    encode_digests,
)
from provenance.errors import InputError, SignatureError

__all__ = [
    "SOURCE_STAMP_V2_BLOCK_ID",
    "STAMP_CERT_ENTRY",
    "StampSigner",
    "stamp_block",
    "stamp_cert_digest",
]

#: apksig ``SignatureAlgorithm.RSA_PKCS1_V1_5_WITH_SHA256``: the only stamp algorithm.
_STAMP_ALG_ID = 0x0103
#: The schemes whose digests apksig's stamp signer looks for.
_SIGNED_SCHEMES = (
    VERSION_APK_SIGNATURE_SCHEME_V3,
    VERSION_APK_SIGNATURE_SCHEME_V2,
    VERSION_JAR_SIGNATURE_SCHEME,
)


@dataclass
class StampSigner:
    """The source stamp key (``--stamp-signer``) and its options.

    ``lineage`` is the stamp key's rotation history (``--stamp-lineage``);
    ``timestamp`` the signing time to record (None: now); ``timestamp_enabled``
    False leaves the timestamp attribute out (apksig ``setSourceStampTimestampEnabled``).
    """

    key: SignerKey
    lineage: lin.Lineage | None = None
    timestamp: int | None = None
    timestamp_enabled: bool = True

    def certificate(self) -> certs.Certificate:
        """The stamp certificate (the first of the key's chain)."""
        if not self.key.certificates:
            raise InputError("No certificates configured for stamp")
        try:
            return certs.load_certificate(bytes(self.key.certificates[0]))
        except certs.CertificateError as e:
            raise InputError(f"Malformed source stamp certificate: {e}") from None

    def check(self) -> tuple[certs.Certificate, bytes | None]:
        """Validate the key; return the certificate and the encoded lineage attribute."""
        cert = self.certificate()
        if self.key.key_type != "RSA":
            raise UnsupportedKeyError(
                "Failed to sign using SHA256withRSA: apksig signs source stamps with "
                f"RSA_PKCS1_V1_5_WITH_SHA256 only, and the stamp key is {self.key.key_type}"
            )
        encoded_lineage: bytes | None = None
        if self.lineage is not None:
            try:
                sub = self.lineage.sub_lineage(cert)
            except lin.NotInLineage:
                raise InputError(
                    "Source stamp: certificate not found in SigningCertificateLineage"
                ) from None
            encoded_lineage = lin.encode_nodes(sub.nodes)
        return cert, encoded_lineage

    def resolved_timestamp(self) -> int | None:
        """The timestamp attribute's value, or None when it is disabled."""
        if not self.timestamp_enabled:
            return None
        ts = int(time.time()) if self.timestamp is None else int(self.timestamp)
        if ts <= 0:
            raise SignatureError(f"Received an invalid value for the stamp timestamp: {ts}")
        return ts


def stamp_cert_digest(cert: certs.Certificate) -> bytes:
    """Content of the ``stamp-cert-sha256`` entry: SHA-256 of the encoded certificate."""
    return hashlib.sha256(cert.encoded).digest()


def _algorithm() -> SignatureAlgorithm:
    alg = find_by_id(_STAMP_ALG_ID)
    assert alg is not None
    return alg


def _signatures(key: SignerKey, cert: certs.Certificate, data: bytes) -> bytes:
    """apksig ``generateSignaturesOverData`` with the one stamp algorithm, encoded."""
    alg = _algorithm()
    try:
        sig = _sign_checked(key, cert, alg, data)
    except SignatureError as e:
        raise SignatureError(f"Source stamp signing failed: {e}") from None
    return lp_pairs([(alg.id, sig)])


def _attributes(lineage: bytes | None, timestamp: int | None) -> bytes:
    """apksig ``encodeStampAttributes``: ``u32 size | (u32 len | u32 id | value)...``.

    apksig iterates a ``HashMap<Integer, byte[]>`` of default capacity; for these two
    keys its bucket order puts the proof of rotation (bucket 4) before the time (10).
    """
    attrs: list[tuple[int, bytes]] = []
    if lineage is not None:
        attrs.append((PROOF_OF_ROTATION_ATTR_ID, lineage))
    if timestamp is not None:
        attrs.append((STAMP_TIME_ATTR_ID, struct.pack("<q", timestamp)))
    return lp(b"".join(struct.pack("<II", 4 + len(v), i) + v for i, v in attrs))


def stamp_block(
    signer: StampSigner,
    scheme_digests: Mapping[int, DigestMap],
    *,
    timestamp: int | None,
) -> bytes:
    """The V2 source stamp block value (ID 0x6dff800d).

    ``scheme_digests`` maps scheme numbers (1, 2, 3; others are ignored, as apksig
    ignores them) to that scheme's content digests.
    """
    cert, lineage = signer.check()
    signed: list[tuple[int, bytes]] = []
    for scheme in _SIGNED_SCHEMES:
        digests = scheme_digests.get(scheme)
        if digests is None:
            continue
        signed.append((scheme, _signatures(signer.key, cert, encode_digests(digests))))
    signed.sort(key=lambda p: p[0])
    attrs = _attributes(lineage, timestamp)
    body = lp_seq([cert.encoded, lp_pairs(signed), attrs, _signatures(signer.key, cert, attrs)])
    return lp(body)
