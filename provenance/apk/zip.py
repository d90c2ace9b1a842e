"""The ZIP container of an APK, read defensively and without copying.

An APK is verified over its raw bytes: the signing schemes digest the ZIP sections
(entries, APK Signing Block, central directory, end of central directory) exactly as
they lie in the file, so this module locates those sections itself instead of going
through :mod:`zipfile`, which hides them and tolerates things the reference rejects.
The rules follow apksig's ``ZipUtils``, ``CentralDirectoryRecord`` and
``LocalFileRecord``: same checks, same failure points.

The file is memory-mapped; every length and count read from it is checked against
the file size before it is used, so hostile input costs bounded memory and time.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import stat
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from provenance.errors import ApkFormatError, InputError

EOCD_SIG = 0x06054B50
CD_SIG = 0x02014B50
LFH_SIG = 0x04034B50
DATA_DESCRIPTOR_SIG = 0x08074B50
EOCD_MIN_SIZE = 22
CD_HEADER_SIZE = 46
LFH_HEADER_SIZE = 30
GP_FLAG_DATA_DESCRIPTOR = 0x08
METHOD_STORED = 0
METHOD_DEFLATED = 8

#: An entry we inflate fully into memory (manifest, JAR signature files) may not
#: claim more than this; larger entries are only ever streamed.
MAX_IN_MEMORY_ENTRY = 64 * 1024 * 1024

_EOCD = struct.Struct("<IHHHHIIH")
_CD = struct.Struct("<IHHHHHHIIIHHHHHII")
_LFH = struct.Struct("<IHHHHHIIIHH")


class ZipFormatError(ApkFormatError):
    """The ZIP structure is malformed (apksig's ``ZipFormatException``)."""


@dataclass(frozen=True, slots=True)
class ZipSections:
    """Where the central directory and the end-of-central-directory record lie."""

    cd_offset: int
    cd_size: int
    cd_count: int
    eocd_offset: int


@dataclass(frozen=True, slots=True)
class CdRecord:
    """One central directory record (directories included: callers filter)."""

    name: str
    name_size: int
    gp_flags: int
    method: int
    mod_time: int
    mod_date: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    lfh_offset: int
    record_offset: int
    record_size: int


class ApkFile:
    """A read-only, memory-mapped APK with its ZIP sections located.

    Use as a context manager, or call :meth:`close`. The buffer is exposed as a
    ``memoryview`` so digest code can hash slices without copying them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{self.path}: is a directory") from None
        except OSError as e:
            raise InputError(f"{self.path}: cannot open: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not _is_regular(st.st_mode):
                raise InputError(f"{self.path}: not a regular file")
            self.size = st.st_size
            if self.size == 0:
                self._mmap: mmap.mmap | None = None
                self.data = memoryview(b"")
            else:
                self._mmap = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                self.data = memoryview(self._mmap)
        finally:
            os.close(fd)
        self._sections: ZipSections | None = None
        self._records: list[CdRecord] | None = None
        self._digests: dict[tuple[int, str], bytes] = {}

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> ApkFile:
        """Wrap in-memory bytes (tests, generated APKs)."""
        self = cls.__new__(cls)
        self.path = Path(name)
        self._mmap = None
        self.data = memoryview(data)
        self.size = len(data)
        self._sections = None
        self._records = None
        self._digests = {}
        return self

    def close(self) -> None:
        """Release the mapping; views handed out earlier must no longer be used."""
        self.data.release()
        if self._mmap is not None:
            # A caller may still hold a slice; then the GC unmaps it later.
            with contextlib.suppress(BufferError):
                self._mmap.close()
            self._mmap = None

    def __enter__(self) -> ApkFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sections -------------------------------------------------------------------

    @property
    def sections(self) -> ZipSections:
        """The ZIP sections, located on first use (raises ZipFormatError)."""
        if self._sections is None:
            self._sections = find_zip_sections(self.data)
        return self._sections

    @property
    def eocd(self) -> memoryview:
        """The end-of-central-directory record, comment included."""
        return self.data[self.sections.eocd_offset :]

    def cd_records(self) -> list[CdRecord]:
        """Central directory records except directories, as apksig lists them."""
        if self._records is None:
            self._records = [
                r
                for r in iter_central_directory(self.data, self.sections)
                if not r.name.endswith("/")
            ]
        return self._records

    def find(self, name: str) -> CdRecord | None:
        """The first record with this exact name, or None."""
        for r in self.cd_records():
            if r.name == name:
                return r
        return None

    # -- entry data -----------------------------------------------------------------

    def local_data_span(self, record: CdRecord) -> tuple[int, int, bool]:
        """(data offset, data size, compressed) of an entry, checked like apksig."""
        return local_data_span(self.data, record, self.sections.cd_offset)

    def read_entry(self, record: CdRecord, limit: int = MAX_IN_MEMORY_ENTRY) -> bytes:
        """The uncompressed bytes of an entry, refusing entries larger than ``limit``."""
        if record.uncompressed_size > limit:
            raise ZipFormatError(
                f"{record.name} too large: {record.uncompressed_size} bytes (limit {limit})"
            )
        offset, size, compressed = self.local_data_span(record)
        raw = self.data[offset : offset + size]
        if not compressed:
            return bytes(raw)
        out = inflate_exact(raw, record.uncompressed_size, record.name)
        return out

    def entry_digests(self, record: CdRecord, hash_names: Sequence[str]) -> list[bytes]:
        """Digests (hashlib names) of an entry's uncompressed bytes, each computed once.

        Signature verification (v1 digests every entry) and inspection (resource
        hashes) read the same entries; this cache lets the second one skip the
        inflation. Missing digests are computed together in one streamed pass.
        Thread-safe: at worst two threads compute the same digest.
        """
        key = record.lfh_offset
        missing = [n for n in dict.fromkeys(hash_names) if (key, n) not in self._digests]
        if missing:
            hashers = [hashlib.new(n) for n in missing]
            for piece in self.iter_entry_chunks(record):
                for h in hashers:
                    h.update(piece)
            for n, h in zip(missing, hashers, strict=True):
                self._digests[(key, n)] = h.digest()
        return [self._digests[(key, n)] for n in hash_names]

    def iter_entry_chunks(self, record: CdRecord, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Stream an entry's uncompressed bytes in chunks (bounded memory)."""
        offset, size, compressed = self.local_data_span(record)
        raw = self.data[offset : offset + size]
        if not compressed:
            for i in range(0, size, chunk):
                yield bytes(raw[i : i + chunk])
            return
        d = zlib.decompressobj(-15)
        produced = 0
        try:
            for i in range(0, size, chunk):
                piece: bytes | memoryview = raw[i : i + chunk]
                while piece:
                    out = d.decompress(piece, chunk)
                    produced += len(out)
                    if produced > record.uncompressed_size:
                        raise ZipFormatError(
                            f"Unexpected size of uncompressed data of {record.name}. "
                            f"Expected: {record.uncompressed_size} bytes, actual: more"
                        )
                    if out:
                        yield out
                    piece = d.unconsumed_tail
                if d.eof:
                    break
            while not d.eof:
                out = d.decompress(b"", chunk)
                if not out:
                    break
                produced += len(out)
                if produced > record.uncompressed_size:
                    raise ZipFormatError(
                        f"Unexpected size of uncompressed data of {record.name}. "
                        f"Expected: {record.uncompressed_size} bytes, actual: more"
                    )
                yield out
        except zlib.error as e:
            raise ZipFormatError(f"Data of entry {record.name} malformed: {e}") from None
        if produced != record.uncompressed_size:
            raise ZipFormatError(
                f"Unexpected size of uncompressed data of {record.name}. "
                f"Expected: {record.uncompressed_size} bytes, actual: {produced} bytes"
            )


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def inflate_exact(raw: memoryview | bytes, expected: int, name: str) -> bytes:
    """Inflate raw DEFLATE data that must produce exactly ``expected`` bytes."""
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(raw, expected + 1) if expected >= 0 else b""
    except zlib.error as e:
        raise ZipFormatError(f"Data of entry {name} malformed: {e}") from None
    if len(out) != expected:
        raise ZipFormatError(
            f"Unexpected size of uncompressed data of {name}. "
            f"Expected: {expected} bytes, actual: {len(out)}{'+' if len(out) > expected else ''}"
            " bytes"
        )
    return out


def find_eocd(data: memoryview) -> int | None:
    """Offset of the EOCD record, or None: first with no comment, then any comment."""
    size = len(data)
    if size < EOCD_MIN_SIZE:
        return None
    for max_comment in (0, 0xFFFF):
        max_comment = min(max_comment, size - EOCD_MIN_SIZE)
        start = size - EOCD_MIN_SIZE - max_comment
        window = bytes(data[start:])
        # Scan backwards for the signature whose comment length matches its position.
        pos = len(window) - EOCD_MIN_SIZE
        while pos >= 0:
            pos = window.rfind(b"PK\x05\x06", 0, pos + 4)
            if pos < 0:
                break
            comment_len = int.from_bytes(window[pos + 20 : pos + 22], "little")
            if comment_len == len(window) - EOCD_MIN_SIZE - pos:
                return start + pos
            pos -= 1
    return None


def find_zip_sections(data: memoryview) -> ZipSections:
    """Locate the central directory via the EOCD record (apksig ``findZipSections``)."""
    eocd_offset = find_eocd(data)
    if eocd_offset is None:
        raise ZipFormatError("ZIP End of Central Directory record not found")
    (_, _, _, _, total, cd_size, cd_offset, _) = _EOCD.unpack_from(data, eocd_offset)
    if cd_offset > eocd_offset:
        raise ZipFormatError(
            f"ZIP Central Directory start offset out of range: {cd_offset}. "
            f"ZIP End of Central Directory offset: {eocd_offset}"
        )
    if cd_offset + cd_size > eocd_offset:
        raise ZipFormatError(
            "ZIP Central Directory overlaps with End of Central Directory. "
            f"CD end: {cd_offset + cd_size}, EoCD start: {eocd_offset}"
        )
    return ZipSections(cd_offset, cd_size, total, eocd_offset)


def iter_central_directory(data: memoryview, sections: ZipSections) -> Iterator[CdRecord]:
    """Parse ``cd_count`` records from the central directory, bounded by its size."""
    start = sections.cd_offset
    end = start + sections.cd_size
    pos = start
    for i in range(sections.cd_count):
        try:
            rec = _parse_cd_record(data, pos, end)
        except ZipFormatError as e:
            raise ApkFormatError(
                f"Malformed ZIP Central Directory record #{i + 1} at file offset {pos}: {e}"
            ) from None
        pos += rec.record_size
        yield rec


def _parse_cd_record(data: memoryview, pos: int, end: int) -> CdRecord:
    if end - pos < CD_HEADER_SIZE:
        raise ZipFormatError(
            f"Input too short. Need at least: {CD_HEADER_SIZE} bytes, "
            f"available: {max(0, end - pos)} bytes"
        )
    (
        sig,
        _vmade,
        _vneed,
        flags,
        method,
        mtime,
        mdate,
        crc,
        csize,
        usize,
        nlen,
        xlen,
        clen,
        _disk,
        _iattr,
        _eattr,
        lfh,
    ) = _CD.unpack_from(data, pos)
    if sig != CD_SIG:
        raise ZipFormatError(f"Not a Central Directory record. Signature: 0x{sig:x}")
    size = CD_HEADER_SIZE + nlen + xlen + clen
    if size > end - pos:
        raise ZipFormatError(f"Input too short. Need: {size} bytes, available: {end - pos} bytes")
    name = bytes(data[pos + CD_HEADER_SIZE : pos + CD_HEADER_SIZE + nlen]).decode(
        "utf-8", "replace"
    )
    return CdRecord(
        name=name,
        name_size=nlen,
        gp_flags=flags,
        method=method,
        mod_time=mtime,
        mod_date=mdate,
        crc32=crc,
        compressed_size=csize,
        uncompressed_size=usize,
        lfh_offset=lfh,
        record_offset=pos,
        record_size=size,
    )


def local_data_span(data: memoryview, rec: CdRecord, cd_offset: int) -> tuple[int, int, bool]:
    """Check an entry's local file header against its CD record; return its data span."""
    name = rec.name
    header_end = rec.lfh_offset + LFH_HEADER_SIZE + rec.name_size
    if header_end > cd_offset:
        raise ZipFormatError(
            f"Local File Header of {name} extends beyond start of Central Directory. "
            f"LFH end: {header_end}, CD start: {cd_offset}"
        )
    (sig, _ver, flags, _method, _t, _d, crc, csize, usize, nlen, xlen) = _LFH.unpack_from(
        data, rec.lfh_offset
    )
    if sig != LFH_SIG:
        raise ZipFormatError(
            f"Not a Local File Header record for entry {name}. Signature: 0x{sig:x}"
        )
    dd = bool(flags & GP_FLAG_DATA_DESCRIPTOR)
    if dd != bool(rec.gp_flags & GP_FLAG_DATA_DESCRIPTOR):
        raise ZipFormatError(
            "Data Descriptor presence mismatch between Local File Header and Central "
            f"Directory for entry {name}"
        )
    if not dd:
        if crc != rec.crc32:
            raise ZipFormatError(
                "CRC-32 mismatch between Local File Header and Central Directory for entry "
                f"{name}. LFH: {crc}, CD: {rec.crc32}"
            )
        if csize != rec.compressed_size:
            raise ZipFormatError(
                "Compressed size mismatch between Local File Header and Central Directory "
                f"for entry {name}. LFH: {csize}, CD: {rec.compressed_size}"
            )
        if usize != rec.uncompressed_size:
            raise ZipFormatError(
                "Uncompressed size mismatch between Local File Header and Central Directory "
                f"for entry {name}. LFH: {usize}, CD: {rec.uncompressed_size}"
            )
    if nlen > rec.name_size:
        raise ZipFormatError(
            f"Name mismatch between Local File Header and Central Directory for entry {name}"
        )
    lname_start = rec.lfh_offset + LFH_HEADER_SIZE
    lname = bytes(data[lname_start : lname_start + nlen]).decode("utf-8", "replace")
    if lname != name:
        raise ZipFormatError(
            f'Name mismatch between Local File Header and Central Directory. LFH: "{lname}", '
            f'CD: "{name}"'
        )
    data_start = lname_start + nlen + xlen
    compressed = rec.method != METHOD_STORED
    size = rec.compressed_size if compressed else rec.uncompressed_size
    if data_start + size > cd_offset:
        raise ZipFormatError(
            f"Local File Header data of {name} overlaps with Central Directory. "
            f"LFH data start: {data_start}, LFH data end: {data_start + size}, "
            f"CD start: {cd_offset}"
        )
    return data_start, size, compressed
