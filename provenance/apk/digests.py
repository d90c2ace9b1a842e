"""Content digests of the APK Signing Block schemes (v2, v3, v3.1, stamps).

What is digested: the bytes before the APK Signing Block, the central directory,
and the end-of-central-directory record with its central-directory offset replaced
by the signing block's offset (so the digest does not depend on the block itself).

* CHUNKED_SHA256/512: each section is cut into 1 MiB chunks; each chunk is hashed as
  ``H(0xa5 | u32 len | chunk)``; the result is ``H(0x5a | u32 count | chunk hashes)``.
* VERITY_CHUNKED_SHA256: the fs-verity style Merkle tree root over 4 KiB pages
  (salt of eight zero bytes) followed by the u64 length of the digested data.

Digests are computed once per APK and algorithm, shared by every scheme that needs
them, straight from the memory map (no copies of the file), with chunk hashing
spread over the CPU cores: ``hashlib`` releases the GIL on large buffers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence

from provenance.apk.algorithms import ContentDigest
from provenance.apk.parallel import WORKERS, executor
from provenance.apk.verity import PAGE, verity_root
from provenance.apk.zip import ApkFile

CHUNK = 1 << 20
VERITY_SALT = b"\0" * 8


def modified_eocd(apk: ApkFile, signing_block_offset: int) -> bytes:
    """The EOCD with its central-directory offset pointing at the signing block."""
    eocd = bytearray(apk.eocd)
    struct.pack_into("<I", eocd, 16, signing_block_offset)
    return bytes(eocd)


def sections_for_digest(apk: ApkFile, signing_block_offset: int) -> list[memoryview]:
    """The three digested sections, as zero-copy views where possible."""
    s = apk.sections
    return [
        apk.data[:signing_block_offset],
        apk.data[s.cd_offset : s.eocd_offset],
        memoryview(modified_eocd(apk, signing_block_offset)),
    ]


def _map(fn: Callable[[memoryview], bytes], items: Sequence[memoryview]) -> list[bytes]:
    """Apply ``fn`` over items, in parallel when there is enough work to pay for it."""
    total = sum(len(i) for i in items)
    if WORKERS == 1 or total < 4 * CHUNK:
        return [fn(i) for i in items]
    # Hand each worker a contiguous batch so per-task overhead stays negligible.
    n = max(1, len(items) // (WORKERS * 4))
    batches = [items[i : i + n] for i in range(0, len(items), n)]
    out: list[bytes] = []
    for part in executor().map(lambda b: [fn(i) for i in b], batches):
        out.extend(part)
    return out


def chunked_digest(sections: Sequence[memoryview], hash_name: str) -> bytes:
    """CHUNKED_SHA256 / CHUNKED_SHA512 over the sections."""
    chunks: list[memoryview] = []
    for sec in sections:
        for off in range(0, len(sec), CHUNK):
            chunks.append(sec[off : off + CHUNK])
    ctor = getattr(hashlib, hash_name)

    def one(c: memoryview) -> bytes:
        h = ctor(b"\xa5" + struct.pack("<I", len(c)))
        h.update(c)
        return bytes(h.digest())

    top = ctor(b"\x5a" + struct.pack("<I", len(chunks)))
    for d in _map(one, chunks):
        top.update(d)
    return bytes(top.digest())


def verity_digest(sections: Sequence[memoryview]) -> bytes:
    """VERITY_CHUNKED_SHA256: tree root over the sections and their total length."""
    if len(sections[0]) % PAGE:
        raise ValueError(f"APK Signing Block is not aligned on 4k boundary: {len(sections[0])}")
    total = sum(len(s) for s in sections)
    return verity_root(sections, VERITY_SALT) + struct.pack("<q", total)


class DigestCache:
    """Computes each content digest of an APK at most once."""

    def __init__(self, apk: ApkFile) -> None:
        self.apk = apk
        self._cache: dict[tuple[int, ContentDigest], bytes] = {}

    def get(self, alg: ContentDigest, signing_block_offset: int) -> bytes:
        """The digest for ``alg`` with the signing block at ``signing_block_offset``."""
        key = (signing_block_offset, alg)
        if key not in self._cache:
            secs = sections_for_digest(self.apk, signing_block_offset)
            if alg is ContentDigest.VERITY_CHUNKED_SHA256:
                self._cache[key] = verity_digest(secs)
            else:
                self._cache[key] = chunked_digest(secs, alg.hash_name)
        return self._cache[key]
