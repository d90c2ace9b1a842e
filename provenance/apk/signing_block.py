"""The APK Signing Block: its location, its ID-value pairs, and length-prefixed data.

The block sits right before the ZIP central directory:
``size(u64) | pairs... | size(u64) | "APK Sig Block 42"``; each pair is
``len(u64) | id(u32) | value``. Inside the v2/v3/v4/stamp values, everything is a
sequence of little-endian uint32-length-prefixed slices, read by :class:`Reader`.
Parsing follows apksig's ``ApkUtilsLite.findApkSigningBlock`` and
``findApkSignatureSchemeBlock``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from provenance.apk.zip import ApkFile

MAGIC_LO = 0x20676953204B5041  # "APK Sig "
MAGIC_HI = 0x3234206B636F6C42  # "Block 42"
MIN_SIZE = 32
INT_MAX = 0x7FFFFFFF

V2_BLOCK_ID = 0x7109871A
V3_BLOCK_ID = 0xF05368C0
V31_BLOCK_ID = 0x1B93AD61
SOURCE_STAMP_V1_BLOCK_ID = 0x2B09189E
SOURCE_STAMP_V2_BLOCK_ID = 0x6DFF800D
VERITY_PADDING_BLOCK_ID = 0x42726577
DEPENDENCY_INFO_BLOCK_ID = 0x504B4453
GOOGLE_PLAY_FROSTING_ID = 0x2146444E


class SignatureNotFound(Exception):
    """No block with the requested ID (apksig's ``SignatureNotFoundException``)."""


class Malformed(Exception):
    """A length-prefixed structure is truncated or inconsistent."""


@dataclass(frozen=True, slots=True)
class SigningBlock:
    """The located APK Signing Block."""

    offset: int  # file offset of the block's first byte
    data: memoryview  # the whole block, header and footer included

    @property
    def size(self) -> int:
        """Size in bytes of the whole block."""
        return len(self.data)

    def iter_pairs(self) -> Iterator[tuple[int, memoryview]]:
        """Yield (id, value) pairs in order; raise SignatureNotFound at a malformed one.

        Lazy on purpose: the reference stops at the first match, so a malformed pair
        after the wanted one must not fail the lookup.
        """
        body = self.data[8 : len(self.data) - 24]
        pos = 0
        n = 0
        while pos < len(body):
            n += 1
            if len(body) - pos < 8:
                raise SignatureNotFound(
                    f"Insufficient data to read size of APK Signing Block entry #{n}"
                )
            (length,) = struct.unpack_from("<Q", body, pos)
            pos += 8
            if length < 4 or length > INT_MAX:
                raise SignatureNotFound(f"APK Signing Block entry #{n} size out of range: {length}")
            if length > len(body) - pos:
                raise SignatureNotFound(
                    f"APK Signing Block entry #{n} size out of range: {length}, "
                    f"available: {len(body) - pos}"
                )
            (ident,) = struct.unpack_from("<I", body, pos)
            yield ident, body[pos + 4 : pos + length]
            pos += length

    def find(self, block_id: int) -> memoryview:
        """The value of the first pair with ``block_id``."""
        for ident, value in self.iter_pairs():
            if ident == block_id:
                return value
        raise SignatureNotFound(
            f"No APK Signature Scheme block in APK Signing Block with ID: {block_id}"
        )


def find_signing_block(apk: ApkFile) -> SigningBlock:
    """Locate the APK Signing Block before the central directory."""
    s = apk.sections
    if s.cd_offset + s.cd_size != s.eocd_offset:
        raise SignatureNotFound(
            "ZIP Central Directory is not immediately followed by End of Central Directory. "
            f"CD end: {s.cd_offset + s.cd_size}, EoCD start: {s.eocd_offset}"
        )
    if s.cd_offset < MIN_SIZE:
        raise SignatureNotFound(
            f"APK too small for APK Signing Block. ZIP Central Directory offset: {s.cd_offset}"
        )
    size_footer, lo, hi = struct.unpack_from("<QQQ", apk.data, s.cd_offset - 24)
    if lo != MAGIC_LO or hi != MAGIC_HI:
        raise SignatureNotFound("No APK Signing Block before ZIP Central Directory")
    if size_footer < 24 or size_footer > INT_MAX - 8:
        raise SignatureNotFound(f"APK Signing Block size out of range: {size_footer}")
    total = size_footer + 8
    offset = s.cd_offset - total
    if offset < 0:
        raise SignatureNotFound(f"APK Signing Block offset out of range: {offset}")
    (size_header,) = struct.unpack_from("<Q", apk.data, offset)
    if size_header != size_footer:
        raise SignatureNotFound(
            "APK Signing Block sizes in header and footer do not match: "
            f"{size_header} vs {size_footer}"
        )
    return SigningBlock(offset, apk.data[offset : s.cd_offset])


def find_scheme_block(apk: ApkFile, block_id: int) -> tuple[SigningBlock, memoryview]:
    """The signing block and the value for ``block_id``; SignatureNotFound otherwise."""
    block = find_signing_block(apk)
    return block, block.find(block_id)


class Reader:
    """Reads little-endian integers and uint32-length-prefixed slices from a buffer."""

    __slots__ = ("buf", "end", "pos", "start")

    def __init__(self, buf: memoryview | bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = memoryview(buf) if isinstance(buf, bytes) else buf
        self.pos = pos
        self.start = pos
        self.end = len(self.buf) if end is None else end

    @property
    def remaining(self) -> int:
        """Bytes left to read."""
        return self.end - self.pos

    def has_remaining(self) -> bool:
        """True while unread bytes remain."""
        return self.pos < self.end

    def _unpack(self, fmt: str, size: int) -> int:
        if self.end - self.pos < size:
            raise Malformed("buffer underflow")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return int(v)

    def u32(self) -> int:
        """An unsigned little-endian 32-bit integer."""
        return self._unpack("<I", 4)

    def i32(self) -> int:
        """A signed little-endian 32-bit integer."""
        return self._unpack("<i", 4)

    def i64(self) -> int:
        """A signed little-endian 64-bit integer."""
        return self._unpack("<q", 8)

    def prefixed(self) -> Reader:
        """A reader over the next length-prefixed slice (apksig ``getLengthPrefixedSlice``)."""
        if self.end - self.pos < 4:
            raise Malformed(
                f"Remaining buffer too short to contain length of length-prefixed field. "
                f"Remaining: {self.end - self.pos}"
            )
        (n,) = struct.unpack_from("<i", self.buf, self.pos)
        self.pos += 4
        if n < 0:
            raise Malformed("Negative length")
        if n > self.end - self.pos:
            raise Malformed(
                f"Length-prefixed field longer than remaining buffer. Field length: {n}, "
                f"remaining: {self.end - self.pos}"
            )
        r = Reader(self.buf, self.pos, self.pos + n)
        self.pos += n
        return r

    def prefixed_bytes(self) -> bytes:
        """The next length-prefixed byte array."""
        if self.end - self.pos < 4:
            raise Malformed("buffer underflow")
        (n,) = struct.unpack_from("<i", self.buf, self.pos)
        self.pos += 4
        if n < 0:
            raise Malformed("Negative length")
        if n > self.end - self.pos:
            raise Malformed(
                f"Underflow while reading length-prefixed value. Length: {n}, "
                f"available: {self.end - self.pos}"
            )
        v = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return v

    def rest(self) -> bytes:
        """All unread bytes."""
        v = bytes(self.buf[self.pos : self.end])
        self.pos = self.end
        return v

    def whole(self) -> bytes:
        """The whole slice this reader covers, regardless of position."""
        return bytes(self.buf[self.start : self.end])
