"""The ZIP side of signing: local records, data alignment, new entries, CD and EOCD.

apksigner rewrites the ZIP while it signs: entries are copied in local-header
order, stored entries are aligned (4 bytes, native libraries to a page) through the
``0xd935`` extra field, signer-made entries are appended DEFLATE-compressed, and the
central directory and EOCD are rebuilt. Each rule here is apksig's (``ApkSigner``,
``LocalFileRecord``, ``CentralDirectoryRecord``, ``EocdRecord``, ``Hints``), because
the byte offsets all end up inside the signed content.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from provenance.apk.zip import (
    CD_HEADER_SIZE,
    DATA_DESCRIPTOR_SIG,
    GP_FLAG_DATA_DESCRIPTOR,
    LFH_HEADER_SIZE,
    LFH_SIG,
    METHOD_STORED,
    CdRecord,
    ZipFormatError,
)
from provenance.errors import ApkFormatError

ALIGNMENT_EXTRA_ID = 0xD935
ALIGNMENT_EXTRA_MIN_SIZE = 6
LIBRARY_PAGE_ALIGNMENT = 16384
FILE_ALIGNMENT = 4096
DEFAULT_DOS_DATE = 0x3A21  # 2009-01-01
GP_FLAG_EFS = 0x0800
METHOD_DEFLATED = 8
PIN_HINT_ASSET = "assets/com.android.hints.pins.txt"
PIN_LIST_ENTRY = "pinlist.meta"
_LFH = struct.Struct("<IHHHHHIIIHH")


@dataclass(frozen=True, slots=True)
class LocalRecord:
    """An entry's local record: header, name, extra, data and data descriptor."""

    name: str
    start: int
    size: int  # the whole record, data descriptor included
    extra_start: int  # offset of the extra field inside the record
    extra: bytes
    data_start: int  # offset of the data inside the record
    data_size: int
    compressed: bool
    uncompressed_size: int

    @property
    def data_offset(self) -> int:
        """Absolute file offset of the entry's data."""
        return self.start + self.data_start


def read_local_record(data: memoryview, cd: CdRecord, section_end: int) -> LocalRecord:
    """The local record of ``cd``, checked against it (apksig ``LocalFileRecord.getRecord``).

    ``section_end`` is where entries must end: the APK Signing Block, else the CD.
    """
    name = cd.name
    start = cd.lfh_offset
    if start + LFH_HEADER_SIZE + cd.name_size > section_end:
        raise ZipFormatError(
            f"Local File Header of {name} extends beyond start of Central Directory. "
            f"LFH end: {start + LFH_HEADER_SIZE + cd.name_size}, CD start: {section_end}"
        )
    (sig, _v, flags, _m, _t, _d, crc, csize, usize, nlen, xlen) = _LFH.unpack_from(data, start)
    if sig != LFH_SIG:
        raise ZipFormatError(
            f"Not a Local File Header record for entry {name}. Signature: 0x{sig:x}"
        )
    dd = bool(flags & GP_FLAG_DATA_DESCRIPTOR)
    if dd != bool(cd.gp_flags & GP_FLAG_DATA_DESCRIPTOR):
        raise ZipFormatError(
            "Data Descriptor presence mismatch between Local File Header and Central "
            f"Directory for entry {name}"
        )
    if not dd and (crc, csize, usize) != (cd.crc32, cd.compressed_size, cd.uncompressed_size):
        raise ZipFormatError(
            f"CRC-32 or size mismatch between Local File Header and Central Directory for entry "
            f"{name}"
        )
    if nlen > cd.name_size:
        raise ZipFormatError(
            f"Name mismatch between Local File Header and Central Directory for entry {name}"
        )
    lname = bytes(data[start + LFH_HEADER_SIZE : start + LFH_HEADER_SIZE + nlen])
    if lname.decode("utf-8", "replace") != name:
        raise ZipFormatError(
            f"Name mismatch between Local File Header and Central Directory for entry {name}"
        )
    data_start = LFH_HEADER_SIZE + nlen + xlen
    compressed = cd.method != METHOD_STORED
    data_size = cd.compressed_size if compressed else cd.uncompressed_size
    data_end = start + data_start + data_size
    if data_end > section_end:
        raise ZipFormatError(
            f"Local File Header data of {name} overlaps with Central Directory. "
            f"LFH data end: {data_end}, CD start: {section_end}"
        )
    extra = bytes(data[start + LFH_HEADER_SIZE + nlen : start + data_start])
    end = data_end
    if dd:
        end = data_end + 12
        if end > section_end:
            raise ZipFormatError(f"Data Descriptor of {name} overlaps with Central Directory")
        (maybe_sig,) = struct.unpack_from("<I", data, data_end)
        if maybe_sig == DATA_DESCRIPTOR_SIG:
            end += 4
            if end > section_end:
                raise ZipFormatError(f"Data Descriptor of {name} overlaps with Central Directory")
    return LocalRecord(
        name,
        start,
        end - start,
        LFH_HEADER_SIZE + cd.name_size,
        extra,
        data_start,
        data_size,
        compressed,
        cd.uncompressed_size,
    )


# -- alignment ---------------------------------------------------------------------------


def alignment_multiple(rec: LocalRecord, lib_page_alignment: int) -> int:
    """The alignment a stored entry's data needs: from its 0xd935 field, else by name."""
    if rec.compressed:
        return 1
    extra = rec.extra
    pos = 0
    while len(extra) - pos >= 4:
        header_id, size = struct.unpack_from("<HH", extra, pos)
        pos += 4
        if size > len(extra) - pos:
            break
        if header_id != ALIGNMENT_EXTRA_ID:
            pos += size
            continue
        if size < 2:
            break
        return int(struct.unpack_from("<H", extra, pos)[0])
    return lib_page_alignment if rec.name.endswith(".so") else 4


def aligning_extra(original: bytes, extra_start: int, multiple: int) -> bytes:
    """The extra field with old alignment padding dropped and a 0xd935 field that aligns
    the data following it at file offset ``extra_start + len(extra)``."""
    if multiple <= 1:
        return original
    out = bytearray()
    pos = 0
    while len(original) - pos >= 4:
        header_id, size = struct.unpack_from("<HH", original, pos)
        if size > len(original) - pos - 4:
            break
        if (header_id == 0 and size == 0) or header_id == ALIGNMENT_EXTRA_ID:
            pos += 4 + size
            continue
        out += original[pos : pos + 4 + size]
        pos += 4 + size
    data_min = extra_start + len(out) + ALIGNMENT_EXTRA_MIN_SIZE
    padding = (multiple - data_min % multiple) % multiple
    out += struct.pack("<HHH", ALIGNMENT_EXTRA_ID, 2 + padding, multiple)
    out += bytes(padding)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """How a record is written: verbatim, or with this new header (name + extra)."""

    header: bytes | None  # replaces bytes [0, data_start) of the record when set
    size: int  # bytes written
    data_start: int  # offset of the data inside the written record


def plan_record(
    data: memoryview,
    rec: LocalRecord,
    out_offset: int,
    *,
    alignment_preserved: bool,
    lib_page_alignment: int,
) -> RecordPlan:
    """apksig ``outputInputJarEntryLfhRecord``: keep the record, or re-align its data."""
    verbatim = RecordPlan(None, rec.size, rec.data_start)
    if rec.start == out_offset and alignment_preserved:
        return verbatim
    multiple = alignment_multiple(rec, lib_page_alignment)
    if multiple <= 1 or (rec.start % multiple == out_offset % multiple and alignment_preserved):
        return verbatim
    if rec.data_offset % multiple != 0 and alignment_preserved:
        return verbatim
    extra = aligning_extra(rec.extra, out_offset + rec.extra_start, multiple)
    header = bytearray(data[rec.start : rec.start + rec.extra_start])
    struct.pack_into("<H", header, 28, len(extra))
    header += extra
    data_start = rec.data_start + len(extra) - len(rec.extra)
    return RecordPlan(bytes(header), len(header) + rec.size - rec.data_start, data_start)


# -- new entries -------------------------------------------------------------------------


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE at level 9, as ``java.util.zip.Deflater(9, true)`` produces it."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return c.compress(data) + c.flush()


def new_entry(
    name: str, data: bytes, lfh_offset: int, mod_time: int, mod_date: int
) -> tuple[bytes, bytes]:
    """(local record, central directory record) of a DEFLATE entry the signer adds."""
    raw_name = name.encode("utf-8")
    comp = deflate(data)
    crc = zlib.crc32(data)
    lfh = _LFH.pack(
        LFH_SIG, 0x14, GP_FLAG_EFS, METHOD_DEFLATED, mod_time, mod_date, crc, len(comp),
        len(data), len(raw_name), 0,
    )  # fmt: skip
    cd = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 0x14, 0x14, GP_FLAG_EFS, METHOD_DEFLATED, mod_time,
        mod_date, crc, len(comp), len(data), len(raw_name), 0, 0, 0, 0, 0, lfh_offset,
    )  # fmt: skip
    return lfh + raw_name + comp, cd + raw_name


def cd_record_at(data: memoryview, cd: CdRecord, lfh_offset: int) -> bytes:
    """An input CD record, copied, with its local header offset changed."""
    raw = bytearray(data[cd.record_offset : cd.record_offset + cd.record_size])
    struct.pack_into("<I", raw, 42, lfh_offset)
    return bytes(raw)


def eocd_with_cd(eocd: bytes, count: int, cd_size: int, cd_offset: int) -> bytes:
    """The input EOCD (comment kept) describing the new central directory."""
    out = bytearray(eocd)
    struct.pack_into("<HHII", out, 8, count & 0xFFFF, count & 0xFFFF, cd_size, cd_offset)
    return bytes(out)


def eocd_padded(eocd: bytes, padding: int) -> bytes:
    """EOCD with ``padding`` zero bytes appended to its comment (``--align-file-size``)."""
    out = bytearray(eocd) + bytes(padding)
    struct.pack_into("<H", out, 20, (len(out) - 22) & 0xFFFF)
    return bytes(out)


def eocd_with_cd_offset(eocd: bytes, offset: int) -> bytes:
    """EOCD whose CD offset is ``offset`` (what the v2+ content digests cover)."""
    out = bytearray(eocd)
    struct.pack_into("<I", out, 16, offset)
    return bytes(out)


# -- pin hints ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PinPattern:
    """A line of ``assets/com.android.hints.pins.txt``: regex and optional byte range."""

    pattern: re.Pattern[str]
    offset: int
    size: int

    def clamp(self, start: int, end: int) -> tuple[int, int] | None:
        """The pinned part of [start, end), or None."""
        if end - start < self.offset:
            return None
        s = start + self.offset
        return s, s + min(end - s, self.size)


_LONG_MAX = (1 << 63) - 1
_JAVA_COMMENT = re.compile("#[^\n\r\u0085\u2028\u2029]*")


def _java_split(text: str, sep: str) -> list[str]:
    """``String.split`` with a literal separator: trailing empty strings dropped."""
    if sep not in text:
        return [text]
    parts = text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_pin_patterns(blob: bytes) -> list[PinPattern]:
    """apksig ``Hints.parsePinPatterns`` (Java regex syntax, taken as Python's)."""
    out: list[PinPattern] = []
    for raw in _java_split(blob.decode("utf-8", "replace"), "\n"):
        line = _JAVA_COMMENT.sub("", raw, count=1)
        fields = _java_split(line, " ")
        try:
            if len(fields) == 1:
                out.append(PinPattern(re.compile(fields[0]), 0, _LONG_MAX))
            elif len(fields) == 3:
                start, end = int(fields[1]), int(fields[2])
                out.append(PinPattern(re.compile(fields[0]), start, end - start))
            else:
                raise ApkFormatError(f"bad pin pattern line {line}")
        except (re.error, ValueError) as e:
            raise ApkFormatError(f"bad pin pattern line {line}: {e}") from None
    return out


def encode_pin_ranges(ranges: list[tuple[int, int]]) -> bytes:
    """pinlist.meta: big-endian (start, length) int32 pairs, clamped to int range."""

    def clamp(v: int) -> int:
        return max(0, min(v, 0x7FFFFFFF))

    return b"".join(struct.pack(">ii", clamp(s), clamp(e - s)) for s, e in ranges)


__all__ = [
    "CD_HEADER_SIZE",
    "LIBRARY_PAGE_ALIGNMENT",
    "LocalRecord",
    "PinPattern",
    "RecordPlan",
    "aligning_extra",
    "alignment_multiple",
    "cd_record_at",
    "deflate",
    "encode_pin_ranges",
    "eocd_padded",
    "eocd_with_cd",
    "eocd_with_cd_offset",
    "new_entry",
    "parse_pin_patterns",
    "plan_record",
    "read_local_record",
]
