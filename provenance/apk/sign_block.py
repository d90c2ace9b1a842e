"""Building the APK Signing Block: v2, v3 and v3.1 signer blocks and the v4 ``.idsig``.

Every byte follows apksig's writers (``V2SchemeSigner``, ``V3SchemeSigner``,
``ApkSigningBlockUtils.generateApkSigningBlock``, ``V4SchemeSigner``), because the
point of signing "like apksigner" is that the output is byte-identical to it: with
RSA PKCS#1 v1.5 (deterministic) the reference's golden outputs can be reproduced
exactly. The content digests themselves come from :mod:`provenance.apk.digests`
and :mod:`provenance.apk.verity`, shared with the verifier.

Keys are reached only through the small :class:`SignerKey` protocol (certificates
plus a ``sign`` callable), so PKCS#12, JKS, PEM files and PKCS#11 tokens all fit.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from provenance.apk import certs
from provenance.apk.algorithms import (
    SDK_MAX,
    SDK_P,
    ContentDigest,
    SignatureAlgorithm,
    find_by_id,
)
from provenance.apk.digests import chunked_digest, verity_digest
from provenance.apk.signing_block import (
    MAGIC_HI,
    MAGIC_LO,
    V2_BLOCK_ID,
    V3_BLOCK_ID,
    V31_BLOCK_ID,
    VERITY_PADDING_BLOCK_ID,
)
from provenance.apk.verity import root_from_tree, verity_tree
from provenance.errors import InputError, SignatureError

PAGE = 4096
STRIPPING_PROTECTION_ATTR_ID = 0xBEEFF00D
PROOF_OF_ROTATION_ATTR_ID = 0x3BA06F8C
ROTATION_MIN_SDK_VERSION_ATTR_ID = 0x559F8B02
ROTATION_ON_DEV_RELEASE_ATTR_ID = 0xC2A6B3BA
#: API level apksig treats as "the platform under development" and the release before it.
DEV_RELEASE = 34
PROD_RELEASE = 33
MAX_APK_SIGNERS = 10
VERSION_V2 = 2
VERSION_V3 = 3
VERSION_V31 = 31

_ALG = {a.name: a for a in (find_by_id(i) for i in (0x0103, 0x0104, 0x0201, 0x0202, 0x0301,
                                                    0x0421, 0x0423, 0x0425)) if a}  # fmt: skip


class SignerKey(Protocol):
    """A private key and its certificate chain (``provenance.keystore.SignerKey``)."""

    @property
    def certificates(self) -> Sequence[bytes]:
        """DER certificates, the signer's own first."""
        ...

    @property
    def key_type(self) -> str:
        """'RSA', 'EC' or 'DSA'."""
        ...

    @property
    def key_size(self) -> int:
        """Modulus (RSA/DSA) or curve order (EC) size in bits."""
        ...

    @property
    def public_key_spki(self) -> bytes:
        """SubjectPublicKeyInfo DER of the key."""
        ...

    def sign(self, data: bytes, hash_name: str, padding: str) -> bytes:
        """Signature over ``data``: hash 'sha1'/'sha256'/'sha512', padding 'pkcs1'/'pss'/''."""
        ...


class UnsupportedKeyError(InputError):
    """A key cannot be used for the requested scheme (apksig's InvalidKeyException)."""


# -- length-prefixed encodings ----------------------------------------------------------


def lp(value: bytes) -> bytes:
    """``uint32 length | value`` (apksig ``encodeAsLengthPrefixedElement``)."""
    return struct.pack("<I", len(value)) + value


def lp_seq(values: Sequence[bytes]) -> bytes:
    """A sequence of length-prefixed elements (not itself prefixed)."""
    return b"".join(lp(v) for v in values)


def lp_pairs(pairs: Sequence[tuple[int, bytes]]) -> bytes:
    """Length-prefixed ``uint32 id | lp(bytes)`` pairs (digests and signatures lists)."""
    return b"".join(struct.pack("<III", 8 + len(v), i, len(v)) + v for i, v in pairs)


# -- algorithms -------------------------------------------------------------------------


def suggested_algorithms(cert: certs.Certificate, *, verity: bool) -> list[SignatureAlgorithm]:
    """Signature algorithms apksig picks for a key (v2 and v3 pick alike).

    PKCS#1 v1.5 rather than PSS, so that signatures are deterministic; a digest no
    weaker than the key (SHA-512 above RSA-3072 and P-256).
    """
    kind = cert.key_algorithm
    bits = cert.key_size or 0
    if kind == "RSA":
        if bits <= 3072:
            out = [_ALG["RSA_PKCS1_V1_5_WITH_SHA256"]]
            if verity:
                out.append(_ALG["VERITY_RSA_PKCS1_V1_5_WITH_SHA256"])
            return out
        return [_ALG["RSA_PKCS1_V1_5_WITH_SHA512"]]
    if kind == "DSA":
        out = [_ALG["DSA_WITH_SHA256"]]
        if verity:
            out.append(_ALG["VERITY_DSA_WITH_SHA256"])
        return out
    if kind == "EC":
        if bits <= 256:
            out = [_ALG["ECDSA_WITH_SHA256"]]
            if verity:
                out.append(_ALG["VERITY_ECDSA_WITH_SHA256"])
            return out
        return [_ALG["ECDSA_WITH_SHA512"]]
    raise UnsupportedKeyError(f"Unsupported key algorithm: {kind}")


def sign_checked(
    key: SignerKey, cert: certs.Certificate, alg: SignatureAlgorithm, data: bytes
) -> bytes:
    """Sign and verify against the certificate, as apksig does after every signature.

    The check catches a key that does not match its certificate before an APK that
    no device would install is written.
    """
    sig = key.sign(data, alg.hash_name, alg.padding)
    try:
        ok = certs.verify(cert.public_key, alg.key_type, alg.hash_name, alg.padding, data, sig)
    except (certs.VerifyException, certs.PublicKeyError) as e:
        raise SignatureError(
            f"Failed to verify generated {alg.name} signature using public key from "
            f"certificate: {e}"
        ) from None
    if not ok:
        raise SignatureError(
            f"Failed to verify generated {alg.name} signature using public key from "
            "certificate (does the key match the certificate?)"
        )
    return sig


# -- signer configuration ---------------------------------------------------------------


@dataclass
class BlockSigner:
    """One signer of a v2/v3/v3.1/v4 block (apksig ``ApkSigningBlockUtils.SignerConfig``)."""

    key: SignerKey
    chain: list[certs.Certificate]
    algorithms: list[SignatureAlgorithm] | None
    min_sdk: int = 0
    max_sdk: int = SDK_MAX
    targets_dev_release: bool = False
    #: Encoded lineage nodes (the proof-of-rotation attribute value), if any.
    lineage: bytes | None = None
    #: For v3 bookkeeping: the lineage object itself (opaque here).
    lineage_obj: object | None = field(default=None, repr=False)

    @property
    def cert(self) -> certs.Certificate:
        """The signing certificate."""
        return self.chain[0]


def content_digest_algorithms(signers: Sequence[BlockSigner]) -> set[ContentDigest]:
    """Every content digest the signers' algorithms need."""
    return {a.digest for s in signers for a in (s.algorithms or ())}


def compute_content_digests(
    sections: Sequence[memoryview], algs: set[ContentDigest]
) -> dict[ContentDigest, bytes]:
    """Content digests of (entries+padding, central directory, modified EOCD)."""
    out: dict[ContentDigest, bytes] = {}
    for alg in sorted(algs, key=lambda a: a.ident):
        if alg is ContentDigest.VERITY_CHUNKED_SHA256:
            out[alg] = verity_digest(sections)
        else:
            out[alg] = chunked_digest(sections, alg.hash_name)
    return out


def _digest_pairs(
    signer: BlockSigner, digests: Mapping[ContentDigest, bytes]
) -> list[tuple[int, bytes]]:
    return [(a.id, digests[a.digest]) for a in signer.algorithms or ()]


def _signatures(signer: BlockSigner, signed: bytes) -> list[tuple[int, bytes]]:
    return [
        (a.id, sign_checked(signer.key, signer.cert, a, signed)) for a in signer.algorithms or ()
    ]


# -- v2 ---------------------------------------------------------------------------------


def v2_block(
    signers: Sequence[BlockSigner], digests: Mapping[ContentDigest, bytes], *, v3_enabled: bool
) -> bytes:
    """The APK Signature Scheme v2 block value."""
    if len(signers) > MAX_APK_SIGNERS:
        raise InputError(
            f"APK Signature Scheme v2 only supports a maximum of {MAX_APK_SIGNERS}, "
            f"{len(signers)} provided"
        )
    attrs = struct.pack("<III", 8, STRIPPING_PROTECTION_ATTR_ID, VERSION_V3) if v3_enabled else b""
    blocks = []
    for n, s in enumerate(signers, 1):
        try:
            signed = lp_seq(
                [
                    lp_pairs(_digest_pairs(s, digests)),
                    lp_seq([c.encoded for c in s.chain]),
                    attrs,
                    b"",
                ]
            )
            blocks.append(lp_seq([signed, lp_pairs(_signatures(s, signed)), s.cert.spki]))
        except SignatureError as e:
            raise SignatureError(f"Signer #{n} failed: {e}") from None
    return lp(lp_seq(blocks))


# -- v3 / v3.1 --------------------------------------------------------------------------


def _v3_attributes(s: BlockSigner, block_id: int, v31_min_sdk: int | None) -> bytes:
    out = b""
    if s.lineage is not None:
        out += struct.pack("<II", 4 + len(s.lineage), PROOF_OF_ROTATION_ATTR_ID) + s.lineage
    if s.targets_dev_release and block_id == V31_BLOCK_ID:
        out += struct.pack("<II", 4, ROTATION_ON_DEV_RELEASE_ATTR_ID)
    if v31_min_sdk is not None and block_id == V3_BLOCK_ID:
        out += struct.pack("<IIi", 8, ROTATION_MIN_SDK_VERSION_ATTR_ID, v31_min_sdk)
    return out


def v3_block(
    signers: Sequence[BlockSigner],
    digests: Mapping[ContentDigest, bytes],
    *,
    block_id: int = V3_BLOCK_ID,
    v31_min_sdk: int | None = None,
) -> bytes:
    """The APK Signature Scheme v3 (or v3.1) block value.

    ``v31_min_sdk``: on the v3.0 block, the stripping protection attribute naming
    the lowest API level of the v3.1 signers (a dev-release 34 is written as 33).
    """
    if v31_min_sdk == DEV_RELEASE:
        v31_min_sdk = PROD_RELEASE
    blocks = []
    for n, s in enumerate(signers, 1):
        try:
            signed = (
                lp(lp_pairs(_digest_pairs(s, digests)))
                + lp(lp_seq([c.encoded for c in s.chain]))
                + struct.pack("<ii", s.min_sdk, s.max_sdk)
                + lp(_v3_attributes(s, block_id, v31_min_sdk))
            )
            blocks.append(
                lp(signed)
                + struct.pack("<ii", s.min_sdk, s.max_sdk)
                + lp(lp_pairs(_signatures(s, signed)))
                + lp(s.cert.spki)
            )
        except SignatureError as e:
            raise SignatureError(f"Signer #{n} failed: {e}") from None
    return lp(lp_seq(blocks))


# -- the APK Signing Block --------------------------------------------------------------


def signing_block(pairs: Sequence[tuple[int, bytes]]) -> bytes:
    """Assemble the block, padded to a 4 KiB multiple with a verity padding pair.

    The padding keeps the central directory page-aligned for fs-verity; a pair needs
    at least 12 bytes, so a smaller gap grows by a page.
    """
    size = 8 + sum(12 + len(v) for _, v in pairs) + 8 + 16
    padding = b""
    if size % PAGE:
        n = PAGE - size % PAGE
        if n < 12:
            n += PAGE
        padding = struct.pack("<QI", n - 8, VERITY_PADDING_BLOCK_ID) + bytes(n - 12)
        size += n
    out = bytearray(struct.pack("<Q", size - 8))
    for ident, value in pairs:
        out += struct.pack("<QI", 4 + len(value), ident)
        out += value
    out += padding
    out += struct.pack("<QQQ", size - 8, MAGIC_LO, MAGIC_HI)
    return bytes(out)


# -- v4 ---------------------------------------------------------------------------------

V4_VERSION = 2
V4_HASH_SHA256 = 1
V4_LOG2_BLOCK_4096 = 12
V4_MAX_SIGNING_INFOS = 7168
_DIGEST_ORDER = {
    ContentDigest.CHUNKED_SHA256: 0,
    ContentDigest.VERITY_CHUNKED_SHA256: 1,
    ContentDigest.CHUNKED_SHA512: 2,
}


def best_digest_for_v4(signer: BlockSigner, digests: Mapping[ContentDigest, bytes]) -> bytes:
    """The signer's strongest digest, as ``V4SchemeSigner.pickBestDigest`` picks it."""
    best: tuple[int, bytes] | None = None
    for a in signer.algorithms or ():
        order = _DIGEST_ORDER[a.digest]
        if best is None or order > best[0]:
            best = (order, digests[a.digest])
    if best is None:
        raise SignatureError("Should have at least one digest")
    return best[1]


def _v4_signing_info(signer: BlockSigner, apk_digest: bytes, root: bytes, file_size: int) -> bytes:
    algs = [
        a for a in signer.algorithms or () if a.digest is not ContentDigest.VERITY_CHUNKED_SHA256
    ]
    if len(algs) != 1:
        raise SignatureError("Should only be one signature generated")
    alg = algs[0]
    cert = signer.cert.encoded
    pub = signer.cert.spki
    parts = (b"", root, apk_digest, cert, b"")  # salt, root, digest, cert, additional data
    size = 4 + 8 + 4 + 1 + sum(4 + len(p) for p in parts)
    data = struct.pack("<iqib", size, file_size, V4_HASH_SHA256, V4_LOG2_BLOCK_4096)
    data += b"".join(lp(p) for p in parts)
    sig = sign_checked(signer.key, signer.cert, alg, data)
    return lp(apk_digest) + lp(cert) + lp(b"") + lp(pub) + struct.pack("<i", alg.id) + lp(sig)


def v4_signature(
    apk: memoryview,
    v4_signer: BlockSigner,
    apk_digest: bytes,
    v41: tuple[BlockSigner, bytes] | None = None,
) -> bytes:
    """The whole ``.idsig`` file: header, hashing info, signing infos, verity tree.

    The tree is the unsalted SHA-256 tree over 4 KiB pages of the whole signed APK.
    """
    tree = verity_tree(apk) if len(apk) else b""
    root = root_from_tree(tree) if tree else bytes(32)
    hashing = struct.pack("<ib", V4_HASH_SHA256, V4_LOG2_BLOCK_4096) + lp(b"") + lp(root)
    infos = _v4_signing_info(v4_signer, apk_digest, root, len(apk))
    if v41 is not None:
        infos += struct.pack("<i", V31_BLOCK_ID) + lp(
            _v4_signing_info(v41[0], v41[1], root, len(apk))
        )
    if len(infos) > V4_MAX_SIGNING_INFOS:
        raise SignatureError(f"Combined SigningInfos length exceeded limit of 7K: {len(infos)}")
    return struct.pack("<i", V4_VERSION) + lp(hashing) + lp(infos) + lp(tree)


__all__ = [
    "PAGE",
    "SDK_P",
    "V2_BLOCK_ID",
    "V3_BLOCK_ID",
    "V31_BLOCK_ID",
    "BlockSigner",
    "SignerKey",
    "UnsupportedKeyError",
    "best_digest_for_v4",
    "compute_content_digests",
    "content_digest_algorithms",
    "lp",
    "lp_pairs",
    "lp_seq",
    "sign_checked",
    "signing_block",
    "suggested_algorithms",
    "v2_block",
    "v3_block",
    "v4_signature",
]
