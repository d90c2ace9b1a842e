"""Resolve manifest resource references (``@0x7f...``) through ``resources.arsc``.

Manifests often say ``versionName="@string/version"`` or ``allowBackup="@bool/backup"``;
the value the device sees is in the compiled resource table. This reader indexes the
table's packages and type chunks once and resolves a reference on demand, choosing the
default configuration (no qualifiers) as ``aapt dump badging`` does, else the first
configuration that defines the entry. Only what manifest facts need is decoded: simple
values (strings, integers, booleans, references); styled and complex (bag) entries are
left unresolved. Every offset is checked; malformed tables raise ``AxmlError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from provenance.apk.axml import ValueType, string_pool_reader
from provenance.errors import AxmlError

__all__ = ["ResourceTable", "ResourceValue"]

_RES_STRING_POOL_TYPE: Final = 0x0001
_RES_TABLE_TYPE: Final = 0x0002
_RES_TABLE_PACKAGE_TYPE: Final = 0x0200
_RES_TABLE_TYPE_TYPE: Final = 0x0201

_FLAG_SPARSE: Final = 0x01
_FLAG_OFFSET16: Final = 0x02
_ENTRY_FLAG_COMPLEX: Final = 0x0001
_ENTRY_FLAG_COMPACT: Final = 0x0008
_NO_ENTRY: Final = 0xFFFFFFFF
_MAX_REFERENCE_DEPTH: Final = 8

_CHUNK = struct.Struct("<HHI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TYPE_HEADER = struct.Struct("<BBHII")
_ENTRY = struct.Struct("<HHI")
_VALUE = struct.Struct("<HBBI")


@dataclass(frozen=True, slots=True)
class ResourceValue:
    """A resolved simple value: ``value_type`` (``Res_value`` type), raw ``data``, text."""

    value_type: int
    data: int
    string: str | None = None


class ResourceTable:
    """An index of a ``resources.arsc``: packages → types → type chunks (configurations)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._strings: Callable[[int], str] | None = None
        # (package id, type id) -> [(is default config, chunk offset, chunk end)]
        self._types: dict[tuple[int, int], list[tuple[bool, int, int]]] = {}
        self._index()

    def _chunk(self, pos: int, end: int) -> tuple[int, int, int]:
        if end - pos < 8:
            raise AxmlError(f"resources.arsc: truncated chunk header at {pos}")
        ctype, header_size, size = _CHUNK.unpack_from(self._data, pos)
        if header_size < 8 or header_size > size or size > end - pos:
            raise AxmlError(f"resources.arsc: malformed chunk at {pos} (size {size})")
        return ctype, header_size, pos + size

    def _index(self) -> None:
        data = self._data
        ctype, header_size, end = self._chunk(0, len(data))
        if ctype != _RES_TABLE_TYPE:
            raise AxmlError(f"resources.arsc: not a resource table (type 0x{ctype:04x})")
        pos = header_size
        while pos < end:
            ctype, header_size, chunk_end = self._chunk(pos, end)
            if ctype == _RES_STRING_POOL_TYPE and self._strings is None:
                self._strings = string_pool_reader(data, pos, chunk_end)
            elif ctype == _RES_TABLE_PACKAGE_TYPE:
                self._index_package(pos, header_size, chunk_end)
            pos = chunk_end

    def _index_package(self, start: int, header_size: int, end: int) -> None:
        if header_size < 12:
            raise AxmlError(f"resources.arsc: package header too short at {start}")
        (package_id,) = _U32.unpack_from(self._data, start + 8)
        pos = start + header_size
        while pos < end:
            ctype, type_header, chunk_end = self._chunk(pos, end)
            if ctype == _RES_TABLE_TYPE_TYPE:
                if type_header < 20 + 4:
                    raise AxmlError(f"resources.arsc: type chunk header too short at {pos}")
                type_id = self._data[pos + 8]
                (config_size,) = _U32.unpack_from(self._data, pos + 20)
                config_end = min(pos + 20 + config_size, pos + type_header)
                config = self._data[pos + 24 : config_end]
                default = not any(config)
                self._types.setdefault((package_id & 0xFF, type_id), []).append(
                    (default, pos, chunk_end)
                )
            pos = chunk_end

    def _entry(self, chunk: int, chunk_end: int, entry_id: int) -> ResourceValue | None:
        data = self._data
        _id, flags, _res, count, entries_start = _TYPE_HEADER.unpack_from(data, chunk + 8)
        (_, header_size, _) = _CHUNK.unpack_from(data, chunk)
        index = chunk + header_size
        if flags & _FLAG_SPARSE:
            if count > (chunk_end - index) // 4:
                raise AxmlError("resources.arsc: sparse entry index runs past its chunk")
            offset = None
            lo, hi = 0, count
            while lo < hi:  # sorted by entry index
                mid = (lo + hi) // 2
                idx, off4 = struct.unpack_from("<HH", data, index + 4 * mid)
                if idx < entry_id:
                    lo = mid + 1
                elif idx > entry_id:
                    hi = mid
                else:
                    offset = off4 * 4
                    break
            if offset is None:
                return None
        else:
            if entry_id >= count:
                return None
            width = 2 if flags & _FLAG_OFFSET16 else 4
            if count > (chunk_end - index) // width:
                raise AxmlError("resources.arsc: entry index runs past its chunk")
            if width == 2:
                (off16,) = _U16.unpack_from(data, index + 2 * entry_id)
                if off16 == 0xFFFF:
                    return None
                offset = off16 * 4
            else:
                (offset,) = _U32.unpack_from(data, index + 4 * entry_id)
                if offset == _NO_ENTRY:
                    return None
        pos = chunk + entries_start + offset
        if pos + 8 > chunk_end:
            raise AxmlError("resources.arsc: entry out of its chunk")
        size, eflags, key = _ENTRY.unpack_from(data, pos)
        if eflags & _ENTRY_FLAG_COMPACT:
            return self._value(eflags >> 8, key)
        if eflags & _ENTRY_FLAG_COMPLEX:
            return None
        if size < 8 or pos + size + 8 > chunk_end:
            raise AxmlError("resources.arsc: value out of its chunk")
        _vsize, _res0, vtype, vdata = _VALUE.unpack_from(data, pos + size)
        return self._value(vtype, vdata)

    def _value(self, vtype: int, vdata: int) -> ResourceValue:
        text = None
        if vtype == ValueType.STRING and self._strings is not None:
            text = self._strings(vdata)
        return ResourceValue(vtype, vdata, text)

    def resolve(self, resource_id: int) -> ResourceValue | None:
        """The value of a resource (following references), or ``None`` if not found."""
        for _ in range(_MAX_REFERENCE_DEPTH):
            chunks = self._types.get(((resource_id >> 24) & 0xFF, (resource_id >> 16) & 0xFF))
            if not chunks:
                return None
            entry_id = resource_id & 0xFFFF
            found = None
            for _default, chunk, end in sorted(chunks, key=lambda c: not c[0]):
                found = self._entry(chunk, end, entry_id)
                if found is not None:
                    break
            if found is None or found.value_type != ValueType.REFERENCE:
                return found
            resource_id = found.data
        return None
