"""APK Signature Scheme v4: the detached ``.idsig`` file used by incremental installs.

The file holds a Merkle (fs-verity style) tree over the whole APK and one or two
signatures over the tree's root and the APK's v2/v3 (and v3.1) content digest:

    int32 version (must be 2)
    bytes hashing_info:  int32 hash_algorithm, int8 log2_blocksize,
                         bytes salt, bytes raw_root_hash
    bytes signing_infos: signing_info, then (v4.1) any number of
                         int32 block_id, bytes signing_info
        signing_info:    bytes apk_digest, bytes certificate, bytes additional_data,
                         bytes public_key, int32 signature_algorithm_id, bytes signature
    bytes tree           (optional)

(``bytes`` = little-endian int32 length + data.) Verification is apksig's
``V4SchemeVerifier`` / ``V4Signature`` exactly, quirks included:

* the version must be 2, else the file is rejected (so ``V4_SIG_VERSION_NOT_CURRENT``
  is unreachable, as in apksig); a truncated field at the top level reads as absent,
  which is fatal for hashing_info / signing_infos and means "no tree" for the tree;
* the tree is always recomputed over the whole file, SHA-256, 4096-byte blocks,
  *no salt*, whatever hashing_info says; the root is compared with
  ``raw_root_hash`` and then, when the file carries a tree, the trees byte for byte;
* every failure is reported on a signer; the second signer is parsed only once the
  first one verified.

How apksig's ``ApkVerifier`` combines it: the v4 result is merged after v2; only
scheme-level errors are copied (there are none in practice), and ``containsErrors``
never looks at v4 signers. So a bad ``.idsig`` leaves the APK verified, just not
"verified using v4". Only when v4 verified does :func:`check_v4` compare it with
v3/v3.1 or v2, and those errors do fail the APK.

Malformed files raise :class:`V4FormatError` where apksig throws.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from provenance.apk import certs
from provenance.apk.algorithms import ContentDigest, find_by_id
from provenance.apk.issues import IssueList
from provenance.apk.result import V4, SchemeResult, SignerResult
from provenance.apk.verity import root_from_tree, verity_tree
from provenance.apk.zip import ApkFile
from provenance.errors import InputError

CURRENT_VERSION = 2
HASHING_ALGORITHM_SHA256 = 1
LOG2_BLOCK_SIZE_4096_BYTES = 12
#: apksig enforces this only when writing; kept for reference.
MAX_SIGNING_INFOS_SIZE = 7168
#: hashing_info / signing_infos larger than this are refused (apksig would try to
#: allocate them; real ones are a few KiB).
MAX_FIELD_SIZE = 64 * 1024 * 1024

#: Pages per hashing task, and the input size from which tasks run in parallel.

#: apksig ``V4_CONTENT_DIGEST_ALGORITHMS``: which v2/v3 digest the v4 signer must carry.
V4_DIGEST_PREFERENCE = (
    ContentDigest.CHUNKED_SHA512,
    ContentDigest.VERITY_CHUNKED_SHA256,
    ContentDigest.CHUNKED_SHA256,
)


class V4Error(InputError):
    """v4 verification cannot go on where apksig throws."""


class V4FormatError(V4Error):
    """The ``.idsig`` file is malformed (apksig: IOException or a runtime exception)."""


# -- verity tree --------------------------------------------------------------------


# -- the .idsig file ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HashingInfo:
    """How the tree was built and its root hash."""

    hash_algorithm: int
    log2_block_size: int
    salt: bytes
    raw_root_hash: bytes


@dataclass(frozen=True, slots=True)
class SigningInfo:
    """One signer's record."""

    apk_digest: bytes
    certificate: bytes
    additional_data: bytes
    public_key: bytes
    signature_algorithm_id: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class SigningInfoBlock:
    """A further signer (v4.1): an id apksig ignores and an unparsed signing_info."""

    block_id: int
    signing_info: bytes


@dataclass(frozen=True, slots=True)
class V4Signature:
    """The top level of an ``.idsig`` file; None marks a field cut off by end of file.

    The tree is not loaded: ``tree_offset``/``tree_size`` locate it in the file.
    """

    path: str
    version: int
    hashing_info: bytes | None
    signing_infos: bytes | None
    tree_offset: int | None
    tree_size: int


class _Buf:
    """apksig's ByteBuffer reads: a short read is EOFException, a negative size
    NegativeArraySizeException; both make the file unusable."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def has_remaining(self) -> bool:
        return self.pos < len(self.data)

    def i32(self) -> int:
        if len(self.data) - self.pos < 4:
            raise V4FormatError("v4 signature truncated")
        (v,) = struct.unpack_from("<i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def i8(self) -> int:
        if len(self.data) - self.pos < 1:
            raise V4FormatError("v4 signature truncated")
        (v,) = struct.unpack_from("<b", self.data, self.pos)
        self.pos += 1
        return int(v)

    def bytes_(self) -> bytes:
        n = self.i32()
        if n < 0:
            raise V4FormatError(f"negative length in v4 signature: {n}")
        if len(self.data) - self.pos < n:
            raise V4FormatError("v4 signature truncated")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v


def _stream_bytes(f: BinaryIO, size: int, limit: int | None) -> tuple[int, int] | None:
    """apksig ``readBytes(InputStream)``: (offset, length) of the next field, or None
    at end of file (the stream is then exhausted)."""
    head = f.read(4)
    if len(head) < 4:
        f.seek(size)
        return None
    (n,) = struct.unpack("<i", head)
    if n < 0:
        raise V4FormatError(f"negative length in v4 signature file: {n}")
    pos = f.tell()
    if n > size - pos:
        f.seek(size)
        return None
    if limit is not None and n > limit:
        raise V4FormatError(f"v4 signature field too large: {n} bytes")
    f.seek(pos + n)
    return pos, n


def read_v4_signature(path: str | os.PathLike[str]) -> V4Signature:
    """Read the top level of an ``.idsig`` file (apksig ``V4Signature.readFrom``)."""
    try:
        # stat first: opening a FIFO would block.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"{path}: not a regular file")
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror}") from None
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: not a regular file")
        size = st.st_size
        head = f.read(4)
        if len(head) < 4:
            raise V4FormatError(f"{path}: v4 signature file truncated")
        (version,) = struct.unpack("<i", head)
        if version != CURRENT_VERSION:
            raise V4FormatError(f"{path}: Invalid signature version.")
        spans = [_stream_bytes(f, size, MAX_FIELD_SIZE) for _ in range(2)]
        tree = _stream_bytes(f, size, None)
        fields: list[bytes | None] = []
        for span in spans:
            if span is None:
                fields.append(None)
            else:
                f.seek(span[0])
                fields.append(f.read(span[1]))
    return V4Signature(
        str(path),
        version,
        fields[0],
        fields[1],
        tree[0] if tree else None,
        tree[1] if tree else 0,
    )


def parse_hashing_info(data: bytes | None) -> HashingInfo:
    """apksig ``HashingInfo.fromByteArray`` (trailing bytes ignored)."""
    if data is None:
        raise V4FormatError("v4 signature file has no hashing info")
    b = _Buf(data)
    return HashingInfo(b.i32(), b.i8(), b.bytes_(), b.bytes_())


def _signing_info(b: _Buf) -> SigningInfo:
    return SigningInfo(b.bytes_(), b.bytes_(), b.bytes_(), b.bytes_(), b.i32(), b.bytes_())


def parse_signing_info(data: bytes) -> SigningInfo:
    """apksig ``SigningInfo.fromByteArray`` (trailing bytes ignored)."""
    return _signing_info(_Buf(data))


def parse_signing_infos(data: bytes | None) -> tuple[SigningInfo, list[SigningInfoBlock]]:
    """apksig ``SigningInfos.fromByteArray``: the first signer, then raw blocks."""
    if data is None:
        raise V4FormatError("v4 signature file has no signing info")
    b = _Buf(data)
    first = _signing_info(b)
    blocks: list[SigningInfoBlock] = []
    while b.has_remaining():
        block_id = b.i32()
        blocks.append(SigningInfoBlock(block_id, b.bytes_()))
    return first, blocks


def signed_data(file_size: int, hashing: HashingInfo, info: SigningInfo) -> bytes:
    """What each signature covers (apksig ``V4Signature.getSignedData``)."""
    parts = (hashing.salt, hashing.raw_root_hash, info.apk_digest, info.certificate,
             info.additional_data)  # fmt: skip
    size = 4 + 8 + 4 + 1 + sum(4 + len(p) for p in parts)
    out = bytearray(
        struct.pack("<iqib", size, file_size, hashing.hash_algorithm, hashing.log2_block_size)
    )
    for p in parts:
        out += struct.pack("<i", len(p))
        out += p
    return bytes(out)


# -- verification -------------------------------------------------------------------


def _verify_signer(info: SigningInfo, data: bytes) -> SignerResult:
    """apksig ``parseAndVerifySignatureBlock``: signature first, then the certificate."""
    s = SignerResult(scheme=V4, index=0)
    alg = find_by_id(info.signature_algorithm_id)
    if alg is None:
        s.error("V4_SIG_UNKNOWN_SIG_ALGORITHM", info.signature_algorithm_id)
        return s
    try:
        key = certs.load_public_key(info.public_key, alg.key_type)
    except certs.PublicKeyError as e:
        s.error("V4_SIG_MALFORMED_PUBLIC_KEY", e)
        return s
    try:
        ok = certs.verify(key, alg.key_type, alg.hash_name, alg.padding, data, info.signature)
    except certs.VerifyException as e:
        s.error("V4_SIG_VERIFY_EXCEPTION", alg, e)
        return s
    if not ok:
        s.error("V4_SIG_DID_NOT_VERIFY", alg)
        return s
    s.verified_signatures[alg] = info.signature
    try:
        parsed = certs.load_certificate(info.certificate)
    except certs.CertificateError as e:
        s.error("V4_SIG_MALFORMED_CERTIFICATE", e)
        return s
    cert = certs.Certificate(info.certificate, parsed.cert)
    s.certs.append(cert)
    try:
        cert_key = cert.spki
    except certs.PublicKeyError:
        cert_key = b""
    if cert_key != info.public_key:
        s.error(
            "V4_SIG_PUBLIC_KEY_MISMATCH_BETWEEN_CERTIFICATE_AND_SIGNATURES_RECORD",
            cert_key.hex(),
            info.public_key.hex(),
        )
        return s
    # apksig files it under signature algorithm id 0 ("doesn't matter here").
    s.content_digests.append((0, info.apk_digest))
    return s


def _read_tree(sig: V4Signature, expected_size: int) -> bytes | None:
    """The file's tree when it could equal a tree of ``expected_size`` bytes."""
    if sig.tree_offset is None or sig.tree_size != expected_size:
        return None
    with open(sig.path, "rb") as f:
        f.seek(sig.tree_offset)
        return f.read(sig.tree_size)


def verify_v4(apk: ApkFile, idsig_path: str) -> SchemeResult:
    """Verify ``idsig_path`` against ``apk`` (apksig ``V4SchemeVerifier.verify``).

    The result's signers carry ``certs`` and ``content_digests`` (one entry, id 0,
    the v2/v3 digest the signer vouches for). Raises :class:`V4FormatError` for a
    malformed file and :class:`InputError` when it cannot be read.
    """
    sig = read_v4_signature(idsig_path)
    result = SchemeResult(V4)
    hashing = parse_hashing_info(sig.hashing_info)
    first, blocks = parse_signing_infos(sig.signing_infos)
    file_size = len(apk.data)

    primary = _verify_signer(first, signed_data(file_size, hashing, first))
    result.signers.append(primary)
    if result.contains_errors:
        return result
    for block in blocks:
        info = parse_signing_info(block.signing_info)
        result.signers.append(_verify_signer(info, signed_data(file_size, hashing, info)))
        if result.contains_errors:
            return result

    tree = verity_tree(apk.data)
    if not tree:  # apksig: IllegalArgumentException slicing the empty tree
        raise V4Error("cannot verify a v4 signature of an empty file")
    root = root_from_tree(tree)
    alg = ContentDigest.VERITY_CHUNKED_SHA256
    if hashing.raw_root_hash != root:
        primary.error(
            "V4_SIG_APK_ROOT_DID_NOT_VERIFY", alg, hashing.raw_root_hash.hex(), root.hex()
        )
    elif sig.tree_offset is not None and _read_tree(sig, len(tree)) != tree:
        primary.error(
            "V4_SIG_APK_TREE_DID_NOT_VERIFY", alg, hashing.raw_root_hash.hex(), root.hex()
        )
    else:
        primary.verified_digests[alg] = root
    result.verified = not result.contains_errors
    return result


# -- what ApkVerifier checks once v4 verified ---------------------------------------


def pick_best_digest_for_v4(content_digests: Iterable[tuple[int, bytes]]) -> bytes | None:
    """The v2/v3 signer's digest a v4 signer must match (apksig ``pickBestDigestForV4``).

    Digests are keyed by their algorithm's content digest (unknown ids skipped, a
    later one replacing an earlier one), then SHA-512, VERITY, SHA-256 in that order.
    """
    by_alg: dict[ContentDigest, bytes] = {}
    for alg_id, value in content_digests:
        alg = find_by_id(alg_id)
        if alg is not None:
            by_alg[alg.digest] = value
    for pref in V4_DIGEST_PREFERENCE:
        if pref in by_alg:
            return by_alg[pref]
    return None


def check_v4_certificate(
    v4_certs: Sequence[certs.Certificate],
    other_certs: Sequence[certs.Certificate],
    issues: IssueList,
) -> None:
    """apksig ``checkV4Certificate``: the first certificates' encodings must match."""
    if not v4_certs or not other_certs:
        raise V4Error("no certificate to compare with the v4 signer's")
    if v4_certs[0].encoded != other_certs[0].encoded:
        issues.error("V4_SIG_V2_V3_SIGNERS_MISMATCH")


def _check_digest(best: bytes | None, v4_digest: bytes, version: int, issues: IssueList) -> None:
    if best is None:  # apksig: NullPointerException in toHex
        raise V4Error(f"the v{version} signer has no digest a v4 signature can refer to")
    if best != v4_digest:
        issues.error("V4_SIG_V2_V3_DIGESTS_MISMATCH", version, best.hex(), v4_digest.hex())


def check_v4_signer(
    others: Sequence[SignerResult],
    v4_certs: Sequence[certs.Certificate],
    v4_digest: bytes,
    issues: IssueList,
) -> None:
    """apksig ``checkV4Signer`` against the v3 (or v3.1) signers."""
    if len(others) != 1:
        issues.error("V4_SIG_MULTIPLE_SIGNERS")
    if not others:
        raise V4Error("no v3 signer to compare with the v4 signer")
    check_v4_certificate(v4_certs, others[0].certs, issues)
    _check_digest(pick_best_digest_for_v4(others[0].content_digests), v4_digest, 3, issues)


def _verified(r: SchemeResult | None) -> bool:
    return r is not None and r.verified


def check_v4(
    issues: IssueList,
    v4: SchemeResult,
    v2: SchemeResult | None,
    v3: SchemeResult | None,
    v31: SchemeResult | None,
) -> None:
    """ApkVerifier's v4 consistency block: call only when ``v4.verified``.

    Errors go to ``issues`` (the APK's top-level result) and do fail the APK.
    Raises :class:`V4Error` where apksig throws (v4 verified but neither v2 nor v3).
    """
    signers = v4.signers
    digests = signers[0].content_digests
    if len(digests) != 1:
        issues.error("V4_SIG_UNEXPECTED_DIGESTS", len(digests))
        if not digests:
            return
    v4_digest = digests[0][1]
    if v3 is not None and v3.verified:
        is_v31 = _verified(v31)
        if len(signers) != (2 if is_v31 else 1):
            issues.error("V41_SIG_NEEDS_TWO_SIGNERS" if is_v31 else "V4_SIG_MULTIPLE_SIGNERS")
            return
        check_v4_signer(v3.signers, signers[0].certs, v4_digest, issues)
        if v31 is not None and is_v31:
            d41 = signers[1].content_digests
            if len(d41) != 1:
                issues.error("V4_SIG_UNEXPECTED_DIGESTS", len(d41))
                if not d41:
                    return
            check_v4_signer(v31.signers, signers[1].certs, d41[0][1], issues)
    elif v2 is not None and v2.verified:
        if len(signers) != 1:
            issues.error("V4_SIG_MULTIPLE_SIGNERS")
        if len(v2.signers) != 1:
            issues.error("V4_SIG_MULTIPLE_SIGNERS")
        if not v2.signers:
            raise V4Error("no v2 signer to compare with the v4 signer")
        check_v4_certificate(signers[0].certs, v2.signers[0].certs, issues)
        _check_digest(pick_best_digest_for_v4(v2.signers[0].content_digests), v4_digest, 2, issues)
    else:
        raise V4Error("V4 signature must be also verified with V2/V3")
