"""A strict, bounded reader of Dalvik Executable (DEX) files, versions 035 to 041.

Shelf inspection needs three things from an APK's code, exactly and fast: the classes
it defines, the methods it references, and -- to attribute a dynamic-code-loading call
to the code that makes it -- which methods invoke which, or load which string
constant. This module reads the DEX index tables (``string_ids``, ``type_ids``,
``proto_ids``, ``field_ids``, ``method_ids``, ``class_defs``), the ``class_data`` of
each class, and the instruction stream of each ``code_item`` just far enough to see
``invoke-*`` / ``invoke-*/range`` / ``invoke-polymorphic`` targets and ``const-string``
operands (every instruction's length is known, so the walk stays on instruction
boundaries, payload tables included).

Everything is read lazily and cached: a string is decoded (MUTF-8) on first use, a
class's data when it is asked for. Every offset and count is checked against the file
size before it is used, each table is checked against its own bounds, decoding is
capped by a work budget proportional to the file size (so overlapping or repeated
offsets cannot make the work quadratic), and anything malformed raises
:class:`DexError` -- never ``IndexError``, ``struct.error`` or ``MemoryError``.

The rules follow the format description (source.android.com "Dalvik executable
format") and ART's ``DexFileVerifier`` where it is stricter than the format: header
size and endian tag, file size equal to the data (per container entry from 041 on),
aligned sections, at most 65,536 types and protos, MUTF-8 without 4-byte forms and
with the declared UTF-16 length. For version 041 ("container" DEX) every offset is
taken relative to the start of the container, and each header in it is read as one
:class:`DexFile` (:func:`open_dex_container`).
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from typing import Final, NamedTuple

from provenance.errors import ApkFormatError

__all__ = [
    "NO_INDEX",
    "ClassDef",
    "CodeRefs",
    "DexError",
    "DexFile",
    "DexLimits",
    "EncodedMethod",
    "MethodRef",
    "Reference",
    "decode_mutf8",
    "open_dex_container",
]

NO_INDEX: Final = 0xFFFFFFFF

_MAGIC: Final = b"dex\n"
_VERSIONS: Final = frozenset(range(35, 42))
_CONTAINER_VERSION: Final = 41
_HEADER_SIZE: Final = 0x70
_HEADER_SIZE_V41: Final = 0x78
_ENDIAN_CONSTANT: Final = 0x12345678
_REVERSE_ENDIAN_CONSTANT: Final = 0x78563412
_MAX_TYPE_IDS: Final = 65536
_MAX_PROTO_IDS: Final = 65536

_HEADER = struct.Struct("<8sI20s20I")
_V41_TAIL = struct.Struct("<II")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_PROTO_ID = struct.Struct("<III")
_FIELD_ID = struct.Struct("<HHI")
_METHOD_ID = struct.Struct("<HHI")
_CLASS_DEF = struct.Struct("<8I")
_CODE_ITEM = struct.Struct("<HHHHII")
_CODE_ITEM_SIZE: Final = 16

# Code units per instruction by opcode (0 = unused opcode). From the "Dalvik bytecode"
# instruction formats: 10x/12x/11n/11x/10t = 1; 20t/22x/21t/21s/21h/21c/23x/22b/22t/22s/
# 22c = 2; 30t/32x/31i/31t/31c/35c/3rc = 3; 45cc/4rcc = 4; 51l = 5.
_LENGTHS: Final = bytes(
    [1, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 1, 1, 1, 1, 1]  # 00-0f
    + [1, 1, 1, 2, 3, 2, 2, 3, 5, 2, 2, 3, 2, 1, 1, 2]  # 10-1f
    + [2, 1, 2, 2, 3, 3, 3, 1, 1, 2, 3, 3, 3, 2, 2, 2]  # 20-2f
    + [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0]  # 30-3f
    + [0, 0, 0, 0]
    + [2] * 12  # 40-4f
    + [2] * 16  # 50-5f
    + [2] * 14
    + [3, 3]  # 60-6f
    + [3, 3, 3, 0, 3, 3, 3, 3, 3, 0, 0, 1, 1, 1, 1, 1]  # 70-7f
    + [1] * 16  # 80-8f
    + [2] * 16  # 90-9f
    + [2] * 16  # a0-af
    + [1] * 16  # b0-bf
    + [1] * 16  # c0-cf
    + [2] * 16  # d0-df
    + [2, 2, 2]
    + [0] * 13  # e0-ef
    + [0] * 10
    + [4, 4, 3, 3, 2, 2]  # f0-ff
)
assert len(_LENGTHS) == 256

#: invoke-kind (35c), invoke-kind/range (3rc), invoke-polymorphic(/range) (45cc/4rcc):
#: the method_id index is the second code unit.
_INVOKE_OPS: Final = frozenset([*range(0x6E, 0x73), *range(0x74, 0x79), 0xFA, 0xFB])
_CONST_STRING: Final = 0x1A
_CONST_STRING_JUMBO: Final = 0x1B
_INVOKE_CLASS: Final = b"[\x6e-\x72\x74-\x78\xfa\xfb]"

_PACKED_SWITCH: Final = 1
_SPARSE_SWITCH: Final = 2
_FILL_ARRAY_DATA: Final = 3

_NOT_MUTF8: Final = re.compile(b"[\x00\xf0-\xff]")


class DexError(ApkFormatError):
    """A DEX file is malformed, unsupported, or exceeds a limit."""


@dataclass(frozen=True, slots=True)
class DexLimits:
    """Resource bounds; the defaults are far above any real DEX file.

    ``work_factor`` bounds the bytes decoded (strings, class data, code) to that many
    times the file size: a valid file decodes each byte at most once, a hostile one
    with overlapping offsets is stopped instead of costing quadratic time.
    """

    max_bytes: int = 512 * 1024 * 1024
    work_factor: int = 4


DEFAULT_LIMITS: Final = DexLimits()


class MethodRef(NamedTuple):
    """A ``method_id``: defining class, name and prototype, as descriptors."""

    class_: str
    name: str
    proto: str

    def __str__(self) -> str:
        return f"{self.class_}->{self.name}{self.proto}"


class ClassDef(NamedTuple):
    """A ``class_def_item`` (indices and offsets as stored)."""

    class_idx: int
    access_flags: int
    superclass_idx: int
    interfaces_off: int
    source_file_idx: int
    annotations_off: int
    class_data_off: int
    static_values_off: int


class EncodedMethod(NamedTuple):
    """A method a class defines: its ``method_id`` and where its code is (0: none)."""

    method_idx: int
    access_flags: int
    code_off: int


class CodeRefs(NamedTuple):
    """What one code item refers to, in instruction order (repeats kept)."""

    invokes: tuple[int, ...]
    strings: tuple[int, ...]


class Reference(NamedTuple):
    """``caller`` (a method_id) invokes method ``target`` or loads string ``target``."""

    caller: int
    kind: str  # "invoke" or "string"
    target: int
    occurrences: int


def decode_mutf8(raw: bytes, utf16_size: int | None = None) -> str:
    """Decode Modified UTF-8 (Java's: NUL as C0 80, supplementary characters as pairs).

    Raises :class:`DexError` on bytes that cannot occur in MUTF-8 (NUL, F0-FF, bad
    sequences) or when ``utf16_size`` (the declared length in UTF-16 units) differs.
    """
    if raw.isascii():
        if b"\x00" in raw:
            raise DexError("MUTF-8 string contains a NUL byte")
        text = raw.decode("ascii")
        units = len(text)
    else:
        if _NOT_MUTF8.search(raw):
            raise DexError("invalid MUTF-8: NUL or 4-byte sequence")
        try:
            text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise DexError(f"invalid MUTF-8: {e.reason} at byte {e.start}") from None
        units = len(text)  # surrogates are still separate code points here
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            # Join surrogate pairs into code points; lone surrogates stay as they are.
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if utf16_size is not None and units != utf16_size:
        raise DexError(f"MUTF-8 string has {units} UTF-16 units, declared {utf16_size}")
    return text


def open_dex_container(data: bytes, limits: DexLimits = DEFAULT_LIMITS) -> list[DexFile]:
    """Every DEX in ``data``: one for versions up to 040, each header's for 041."""
    first = DexFile(data, limits=limits)
    if first.version < _CONTAINER_VERSION:
        return [first]
    out = [first]
    pos = first.base + first.file_size
    while pos < len(data):
        if len(out) >= len(data) // _HEADER_SIZE_V41:
            raise DexError("DEX container has more headers than fit in it")
        dex = DexFile(data, base=pos, limits=limits)
        out.append(dex)
        pos += dex.file_size
    return out


class DexFile:
    """One DEX file (or one entry of a 041 container), parsed lazily.

    Construction checks the header and the bounds of every index table; the tables
    themselves are decoded on first use. ``data`` must stay unchanged while in use.
    """

    def __init__(self, data: bytes, *, base: int = 0, limits: DexLimits = DEFAULT_LIMITS) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)
        if len(data) > limits.max_bytes:
            raise DexError(f"DEX is {len(data)} bytes, more than the limit of {limits.max_bytes}")
        self._data = data
        self._end = len(data)
        self.base = base
        self.limits = limits
        self._budget = limits.work_factor * max(len(data), 1 << 16)
        if base < 0 or len(data) - base < _HEADER_SIZE:
            raise DexError(f"DEX too short for a header: {max(0, len(data) - base)} bytes")
        fields = _HEADER.unpack_from(data, base)
        magic: bytes = fields[0]
        if magic[:4] != _MAGIC or magic[7] != 0 or not magic[4:7].isdigit():
            raise DexError(f"not a DEX file (magic {magic!r})")
        self.version = int(magic[4:7])
        if self.version not in _VERSIONS:
            raise DexError(f"unsupported DEX version {magic[4:7].decode()}")
        self.checksum: int = fields[1]
        self.signature: bytes = fields[2]
        (
            self.file_size,
            self.header_size,
            endian_tag,
            self.link_size,
            self.link_off,
            self.map_off,
            string_ids_size,
            string_ids_off,
            type_ids_size,
            type_ids_off,
            proto_ids_size,
            proto_ids_off,
            field_ids_size,
            field_ids_off,
            method_ids_size,
            method_ids_off,
            class_defs_size,
            class_defs_off,
            self.data_size,
            self.data_off,
        ) = fields[3:]
        if endian_tag == _REVERSE_ENDIAN_CONSTANT:
            raise DexError("reverse-endian DEX files are not supported")
        if endian_tag != _ENDIAN_CONSTANT:
            raise DexError(f"bad endian tag 0x{endian_tag:08x}")
        if self.version >= _CONTAINER_VERSION:
            if self.header_size < _HEADER_SIZE_V41 or len(data) - base < _HEADER_SIZE_V41:
                raise DexError(f"DEX 041 header too short: {self.header_size} bytes")
            container_size, header_offset = _V41_TAIL.unpack_from(data, base + _HEADER_SIZE)
            if container_size != len(data):
                raise DexError(
                    f"DEX container size {container_size} != data size {len(data)} bytes"
                )
            if header_offset != base:
                raise DexError(f"DEX header offset {header_offset} != its position {base}")
            if self.file_size < self.header_size or self.file_size > len(data) - base:
                raise DexError(
                    f"DEX file size {self.file_size} out of bounds of the "
                    f"{len(data) - base}-byte container rest"
                )
        else:
            if self.header_size != _HEADER_SIZE:
                raise DexError(f"bad DEX header size {self.header_size}")
            if self.file_size != len(data):
                raise DexError(f"DEX file size {self.file_size} != data size {len(data)} bytes")
        if type_ids_size > _MAX_TYPE_IDS:
            raise DexError(f"too many type_ids: {type_ids_size}")
        if proto_ids_size > _MAX_PROTO_IDS:
            raise DexError(f"too many proto_ids: {proto_ids_size}")
        self._string_ids = self._table("string_ids", string_ids_off, string_ids_size, 4)
        self._type_ids = self._table("type_ids", type_ids_off, type_ids_size, 4)
        self._proto_off = self._section("proto_ids", proto_ids_off, proto_ids_size, 12)
        self._field_off = self._section("field_ids", field_ids_off, field_ids_size, 8)
        self._method_off = self._section("method_ids", method_ids_off, method_ids_size, 8)
        self._class_off = self._section("class_defs", class_defs_off, class_defs_size, 32)
        self.string_count: int = string_ids_size
        self.type_count: int = type_ids_size
        self.proto_count: int = proto_ids_size
        self.field_count: int = field_ids_size
        self.method_count: int = method_ids_size
        self.class_def_count: int = class_defs_size
        self._strings: list[str | None] = [None] * string_ids_size
        self._string_by_off: dict[int, str] = {}
        self._types: list[str | None] = [None] * type_ids_size
        self._protos: list[str | None] = [None] * proto_ids_size
        self._method_ids: list[tuple[int, int, int]] | None = None
        self._class_defs: list[ClassDef] | None = None
        self._class_methods: dict[int, tuple[tuple[int, int, int], ...]] = {}
        self._code_index: tuple[list[int], list[int], list[int]] | None = None
        self._code_callers: dict[int, tuple[int, ...]] = {}
        self._code_refs: dict[int, CodeRefs] = {}

    # -- bounds ---------------------------------------------------------------------

    def _section(self, what: str, off: int, count: int, item: int) -> int:
        """Check that ``count`` items of ``item`` bytes at ``off`` fit (and are aligned)."""
        if count == 0:
            return off
        if off % 4:
            raise DexError(f"{what} offset {off} not 4-byte aligned")
        if off < self.base + _HEADER_SIZE or off > self._end or count * item > self._end - off:
            raise DexError(
                f"{what} ({count} x {item} bytes at offset {off}) out of bounds of the "
                f"{self._end}-byte file"
            )
        return off

    def _table(self, what: str, off: int, count: int, item: int) -> array[int]:
        """A table of u32 values as a compact array (4 bytes per entry)."""
        self._section(what, off, count, item)
        table = array("I")
        if count:
            table.frombytes(self._data[off : off + 4 * count])
            if sys.byteorder == "big":
                table.byteswap()
        return table

    def _spend(self, nbytes: int, what: str) -> None:
        self._budget -= nbytes
        if self._budget < 0:
            raise DexError(f"DEX decoding work exceeds the limit ({what}: overlapping data?)")

    def _offset(self, off: int, need: int, what: str) -> int:
        if off < self.base + _HEADER_SIZE or off > self._end - need:
            raise DexError(f"{what} offset {off} out of bounds of the {self._end}-byte file")
        return off

    # -- integrity ------------------------------------------------------------------

    @property
    def checksum_ok(self) -> bool:
        """Whether the header's Adler-32 checksum matches (the runtime rejects a mismatch)."""
        start = self.base + 12
        end = self.base + self.file_size
        return zlib.adler32(memoryview(self._data)[start:end]) == self.checksum

    # -- strings, types, protos -----------------------------------------------------

    def string(self, idx: int) -> str:
        """The string with this ``string_id`` index (decoded once, then cached)."""
        if not 0 <= idx < self.string_count:
            raise DexError(f"string index {idx} out of range ({self.string_count} strings)")
        cached = self._strings[idx]
        if cached is not None:
            return cached
        off = self._string_ids[idx]
        text = self._string_by_off.get(off)
        if text is None:
            text = self._read_string_data(off, idx)
            self._string_by_off[off] = text
        self._strings[idx] = text
        return text

    def _read_string_data(self, off: int, idx: int) -> str:
        data, end = self._data, self._end
        pos = self._offset(off, 1, f"string_data of string {idx}")
        size, pos = self._uleb128(pos, f"string {idx} length")
        # A UTF-16 unit takes at most 3 bytes of MUTF-8: look no further for the NUL.
        limit = min(end, pos + 3 * size + 1)
        nul = data.find(b"\x00", pos, limit)
        if nul < 0:
            raise DexError(f"string {idx} at offset {off} is not NUL-terminated within bounds")
        self._spend(nul - pos + 1, "strings")
        return decode_mutf8(data[pos:nul], size)

    def strings(self) -> Iterator[str]:
        """Every string in ``string_ids`` order."""
        for i in range(self.string_count):
            yield self.string(i)

    def find_string(self, text: str) -> int | None:
        """Index of ``text`` in the string pool, or ``None`` (binary search: the pool is sorted)."""
        lo, hi = 0, self.string_count
        key = _utf16_key(text)
        while lo < hi:
            mid = (lo + hi) // 2
            k = _utf16_key(self.string(mid))
            if k < key:
                lo = mid + 1
            elif k > key:
                hi = mid
            else:
                return mid
        return None

    def type_name(self, idx: int) -> str:
        """The descriptor of ``type_id`` ``idx`` (e.g. ``Ljava/lang/String;``)."""
        if not 0 <= idx < self.type_count:
            raise DexError(f"type index {idx} out of range ({self.type_count} types)")
        cached = self._types[idx]
        if cached is None:
            cached = self._types[idx] = self.string(self._type_ids[idx])
        return cached

    def find_type(self, descriptor: str) -> int | None:
        """Index of the type with this descriptor, or ``None`` (type_ids are sorted)."""
        sidx = self.find_string(descriptor)
        if sidx is None:
            return None
        lo, hi = 0, self.type_count
        while lo < hi:
            mid = (lo + hi) // 2
            v = self._type_ids[mid]
            if v < sidx:
                lo = mid + 1
            elif v > sidx:
                hi = mid
            else:
                return mid
        return None

    def proto(self, idx: int) -> str:
        """The prototype of ``proto_id`` ``idx`` as ``(params)return`` descriptors."""
        if not 0 <= idx < self.proto_count:
            raise DexError(f"proto index {idx} out of range ({self.proto_count} protos)")
        cached = self._protos[idx]
        if cached is not None:
            return cached
        _shorty, ret, params_off = _PROTO_ID.unpack_from(self._data, self._proto_off + 12 * idx)
        params = "".join(self.type_name(t) for t in self._type_list(params_off, "parameters"))
        cached = self._protos[idx] = f"({params}){self.type_name(ret)}"
        return cached

    def _type_list(self, off: int, what: str) -> tuple[int, ...]:
        if off == 0:
            return ()
        if off % 4:
            raise DexError(f"{what} type_list offset {off} not 4-byte aligned")
        self._offset(off, 4, f"{what} type_list")
        (size,) = _U32.unpack_from(self._data, off)
        if size > (self._end - off - 4) // 2:
            raise DexError(f"{what} type_list of {size} entries at {off} runs past the end")
        self._spend(2 * size, "type lists")
        return struct.unpack_from(f"<{size}H", self._data, off + 4)

    # -- fields and methods ---------------------------------------------------------

    def field_ref(self, idx: int) -> tuple[str, str, str]:
        """``(class, name, type)`` of ``field_id`` ``idx``."""
        if not 0 <= idx < self.field_count:
            raise DexError(f"field index {idx} out of range ({self.field_count} fields)")
        cls, typ, name = _FIELD_ID.unpack_from(self._data, self._field_off + 8 * idx)
        return self.type_name(cls), self.string(name), self.type_name(typ)

    def _method_table(self) -> list[tuple[int, int, int]]:
        if self._method_ids is None:
            start = self._method_off
            view = memoryview(self._data)[start : start + 8 * self.method_count]
            self._method_ids = list(_METHOD_ID.iter_unpack(view))
        return self._method_ids

    def method_ids(self) -> list[tuple[int, int, int]]:
        """Every ``method_id`` as stored: ``(class_idx, proto_idx, name_idx)``."""
        return self._method_table()

    def method_id(self, idx: int) -> tuple[int, int, int]:
        """``(class_idx, proto_idx, name_idx)`` of ``method_id`` ``idx``, as stored."""
        if not 0 <= idx < self.method_count:
            raise DexError(f"method index {idx} out of range ({self.method_count} methods)")
        return self._method_table()[idx]

    def method_ref(self, idx: int) -> MethodRef:
        """Class, name and prototype of ``method_id`` ``idx``."""
        cls, proto, name = self.method_id(idx)
        return MethodRef(self.type_name(cls), self.string(name), self.proto(proto))

    def method_ref_strings(self) -> list[str]:
        """Every ``method_id`` as ``Lclass;->name(params)return``, in index order (fast)."""
        table = self._method_table()
        types = {c: self.type_name(c) for c in {c for c, _, _ in table}}
        protos = {p: self.proto(p) for p in {p for _, p, _ in table}}
        names = {n: self.string(n) for n in {n for _, _, n in table}}
        return [f"{types[c]}->{names[n]}{protos[p]}" for c, p, n in table]

    def method_refs(self) -> Iterator[MethodRef]:
        """Every ``method_id`` (methods defined here and methods called elsewhere)."""
        for i in range(self.method_count):
            yield self.method_ref(i)

    def methods_named(self, class_idxs: Iterable[int], name: str) -> list[int]:
        """``method_id`` indices of methods called ``name`` on any of these classes."""
        wanted = set(class_idxs)
        sidx = self.find_string(name)
        if sidx is None or not wanted:
            return []
        return [i for i, (c, _p, n) in enumerate(self._method_table()) if n == sidx and c in wanted]

    # -- classes --------------------------------------------------------------------

    def class_defs(self) -> list[ClassDef]:
        """Every ``class_def_item`` in file order."""
        if self._class_defs is None:
            start = self._class_off
            view = memoryview(self._data)[start : start + 32 * self.class_def_count]
            defs = [ClassDef(*t) for t in _CLASS_DEF.iter_unpack(view)]
            for d in defs:
                if d.class_idx >= self.type_count:
                    raise DexError(f"class_def names type {d.class_idx} of {self.type_count}")
            self._class_defs = defs
        return self._class_defs

    def class_names(self) -> list[str]:
        """Descriptors of every class defined in this file, in file order."""
        return [self.type_name(d.class_idx) for d in self.class_defs()]

    def superclass(self, d: ClassDef) -> str | None:
        """The superclass descriptor of a class (``None`` for ``java.lang.Object``)."""
        return None if d.superclass_idx == NO_INDEX else self.type_name(d.superclass_idx)

    def class_methods(self, d: ClassDef) -> tuple[EncodedMethod, ...]:
        """Direct then virtual methods of a class, from its ``class_data_item``."""
        return tuple(EncodedMethod._make(t) for t in self._methods_raw(d.class_data_off))

    def _methods_raw(self, off: int) -> tuple[tuple[int, int, int], ...]:
        """(method_idx, access_flags, code_off) of the class data at ``off`` (cached)."""
        if off == 0:
            return ()
        cached = self._class_methods.get(off)
        if cached is None:
            self._offset(off, 4, "class_data")
            cached = self._class_methods[off] = self._decode_class_data(off)
        return cached

    def _prefetch_class_data(self) -> None:
        """Decode the class data of every class at once (the bulk path of large files).

        d8 and dx write class data items back to back, so one tokenisation of the span
        from the first item to the end of the last (bounded by the last item's declared
        counts) finds every item at a token boundary; an item that is not (a gap, an
        unusual layout) is simply left to its own decoding on first use.
        """
        offs = sorted(
            {d.class_data_off for d in self.class_defs() if d.class_data_off}
            - self._class_methods.keys()
        )
        if len(offs) < 16:
            return
        data, end = self._data, self._end
        first, last = offs[0], offs[-1]
        self._offset(first, 4, "class_data")
        self._offset(last, 4, "class_data")
        (sf, inf, dm, vm), _ = _ulebs(data, last, 4, end)
        span_end = min(end, last + 20 + 5 * (2 * (sf + inf) + 3 * (dm + vm)))
        tokens = _ULEB128.findall(data, first, span_end)
        values = _uleb_values(tokens)
        starts = list(accumulate(map(len, tokens), initial=first))
        ntok = len(tokens)
        index: dict[int, int] | None = None
        i = 0
        for off in offs:
            if i >= ntok or starts[i] != off:
                if index is None:
                    index = dict(zip(starts, range(ntok), strict=False))
                found = index.get(off)
                if found is None:
                    continue
                i = found
            if i + 4 > ntok:
                continue
            sf, inf, dm, vm = values[i : i + 4]
            j = i + 4 + 2 * (sf + inf)
            k = j + 3 * (dm + vm)
            if k > ntok or (tokens[k - 1][-1] > 0x7F and len(tokens[k - 1]) < 5):
                continue  # cut by the end of the span: decoded alone on first use
            self._class_methods[off] = self._methods_from(values, j, dm, vm, off)
            self._spend(starts[k] - off, "class_data")
            i = k

    def _methods_from(
        self, values: list[int], j: int, dm: int, vm: int, off: int
    ) -> tuple[tuple[int, int, int], ...]:
        """Methods from decoded values: (index diff, flags, code offset) per method."""
        k = j + 3 * (dm + vm)
        diffs = values[j:k:3]
        idxs = [*accumulate(diffs[:dm]), *accumulate(diffs[dm:])]
        if idxs and max(idxs) >= self.method_count:
            raise DexError(f"class_data at {off}: method index {max(idxs)} of {self.method_count}")
        return tuple(zip(idxs, values[j + 1 : k : 3], values[j + 2 : k : 3], strict=True))

    def _decode_class_data(self, off: int) -> tuple[tuple[int, int, int], ...]:
        data, end = self._data, self._end
        (sf, inf, dm, vm), pos = _ulebs(data, off, 4, end)
        # Each encoded field takes at least 2 bytes, each method at least 3.
        nfield, nmethod = sf + inf, dm + vm
        if 2 * nfield + 3 * nmethod > end - pos:
            raise DexError(f"class_data at {off} declares more members than fit in the file")
        values, pos = _ulebs(data, pos, 2 * nfield + 3 * nmethod, end)
        out = self._methods_from(values, 2 * nfield, dm, vm, off)
        self._spend(pos - off, "class_data")
        return out

    def _uleb128(self, pos: int, what: str) -> tuple[int, int]:
        data, end = self._data, self._end
        result = shift = 0
        for _ in range(5):
            if pos >= end:
                raise DexError(f"{what}: LEB128 runs past the end of the file")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result & 0xFFFFFFFF, pos
            shift += 7
        return result & 0xFFFFFFFF, pos

    # -- code -----------------------------------------------------------------------

    def code_span(self, code_off: int) -> tuple[int, int]:
        """(first, end) byte offsets of a code item's instructions, bounds checked."""
        if code_off % 4:
            raise DexError(f"code_item offset {code_off} not 4-byte aligned")
        self._offset(code_off, _CODE_ITEM_SIZE, "code_item")
        *_, insns_size = _CODE_ITEM.unpack_from(self._data, code_off)
        start = code_off + _CODE_ITEM_SIZE
        if insns_size > (self._end - start) // 2:
            raise DexError(f"code_item at {code_off}: {insns_size} code units run past the end")
        return start, start + 2 * insns_size

    def code_refs(self, code_off: int) -> CodeRefs:
        """Method and string references of one code item (decoded once, then cached)."""
        cached = self._code_refs.get(code_off)
        if cached is None:
            start, end = self.code_span(code_off)
            self._spend(end - start, "code")
            cached = self._code_refs[code_off] = _scan_code(self._data, start, end, code_off)
        return cached

    def iter_code_refs(self) -> Iterator[tuple[int, CodeRefs]]:
        """``(method_id, references)`` for every method with code, walking all of it.

        Linear in the code size but slow in Python (every instruction is visited);
        :meth:`find_references` answers targeted questions much faster.
        """
        self._prefetch_class_data()
        for d in self.class_defs():
            for idx, _flags, code in self._methods_raw(d.class_data_off):
                if code:
                    yield idx, self.code_refs(code)

    def _code_items(self) -> tuple[list[int], list[int], list[int]]:
        """Sorted (instruction start, end, code_off) of every code item; overlaps refused."""
        if self._code_index is None:
            self._prefetch_class_data()
            pairs = [
                (code, idx)
                for d in self.class_defs()
                for idx, _flags, code in self._methods_raw(d.class_data_off)
                if code
            ]
            callers: dict[int, tuple[int, ...]] = {code: (idx,) for code, idx in pairs}
            if len(callers) != len(pairs):  # methods sharing a code item
                shared: dict[int, list[int]] = {}
                for code, idx in pairs:
                    shared.setdefault(code, []).append(idx)
                callers = {code: tuple(v) for code, v in shared.items()}
            self._code_callers = callers
            data, end_of_data = self._data, self._end
            offs = sorted(callers)
            if offs and (
                offs[0] < self.base + _HEADER_SIZE
                or offs[-1] > end_of_data - _CODE_ITEM_SIZE
                or any(o & 3 for o in offs)
            ):
                for o in offs:
                    self.code_span(o)  # raises with the reason
            unpack = _U32.unpack_from
            spans = [(o + 16, o + 16 + 2 * unpack(data, o + 12)[0], o) for o in offs]
            if spans and max(e for _, e, _ in spans) > end_of_data:
                for o in offs:
                    self.code_span(o)
            starts = [sp[0] for sp in spans]
            ends = [sp[1] for sp in spans]
            for i in range(1, len(spans)):
                if starts[i] < ends[i - 1]:
                    raise DexError(f"code_item at {offs[i]} overlaps the previous code item")
            self._code_index = (starts, ends, offs)
        return self._code_index

    def find_references(
        self, methods: Iterable[int] = (), strings: Iterable[int] = ()
    ) -> list[Reference]:
        """Which methods invoke any of ``methods`` or load any of ``strings`` (const-string).

        A byte search finds the code items that could contain such an instruction; only
        those are decoded, instruction by instruction, so the answer is exactly what a
        full walk (:meth:`iter_code_refs`) gives, at a fraction of its cost. Results are
        sorted by (caller, kind, target); methods sharing a code item each get a row.
        """
        mset = {m for m in methods if 0 <= m < 0x10000}
        sset = {s for s in strings if 0 <= s < self.string_count}
        if not mset and not sset:
            return []
        alts: list[bytes] = []
        if mset:
            targets = b"|".join(re.escape(_U16.pack(m)) for m in sorted(mset))
            alts.append(_INVOKE_CLASS + b".(?:" + targets + b")")
        short = sorted(s for s in sset if s < 0x10000)
        if short:
            targets = b"|".join(re.escape(_U16.pack(s)) for s in short)
            alts.append(b"\x1a.(?:" + targets + b")")
        if sset:
            targets = b"|".join(re.escape(_U32.pack(s)) for s in sorted(sset))
            alts.append(b"\x1b.(?:" + targets + b")")
        pattern = re.compile(b"|".join(alts), re.DOTALL)
        starts, ends, offs = self._code_items()
        if not starts:
            return []
        candidates: set[int] = set()
        search, data = pattern.search, self._data
        pos, stop = starts[0], ends[-1]
        # search, not finditer: matches may overlap (restart one byte after each start).
        while (m := search(data, pos, stop)) is not None:
            hit = m.start()
            i = bisect_right(starts, hit) - 1
            if i >= 0 and hit < ends[i] and (hit - starts[i]) % 2 == 0:
                candidates.add(offs[i])
            pos = hit + 1
        counts: dict[tuple[int, str, int], int] = {}
        for off in candidates:
            refs = self.code_refs(off)
            found: dict[tuple[str, int], int] = {}
            for t in refs.invokes:
                if t in mset:
                    found[("invoke", t)] = found.get(("invoke", t), 0) + 1
            for s in refs.strings:
                if s in sset:
                    found[("string", s)] = found.get(("string", s), 0) + 1
            for caller in self._code_callers.get(off, ()):
                for (kind, target), n in found.items():
                    key = (caller, kind, target)
                    counts[key] = counts.get(key, 0) + n
        return [Reference(c, k, t, n) for (c, k, t), n in sorted(counts.items())]


_ULEB128: Final = re.compile(b"[\x80-\xff]{0,4}[\x00-\xff]", re.DOTALL)


_from_le: Final = partial(int.from_bytes, byteorder="little")


def _uleb_values(tokens: list[bytes]) -> list[int]:
    """Values of ULEB128 tokens (at most 5 bytes, 32 bits): one-byte tokens as they are,
    longer ones as their little-endian integer with the continuation bits squeezed out."""
    return [
        t[0]
        if len(t) == 1
        else (
            (x & 0x7F) | ((x >> 1) & 0x3F80) | ((x >> 2) & 0x1FC000)
            if (x := _from_le(t)) < 0x1000000  # up to 3 bytes
            else (x & 0x7F)
            | ((x >> 1) & 0x3F80)
            | ((x >> 2) & 0x1FC000)
            | ((x >> 3) & 0xFE00000)
            | ((x >> 4) & 0xF0000000)
        )
        for t in tokens
    ]


def _ulebs(data: bytes, pos: int, n: int, end: int) -> tuple[list[int], int]:
    """``n`` consecutive ULEB128 values from ``pos`` (at most 5 bytes each), and the end.

    Tokenised by one regular-expression pass in C, then converted with a fast path for
    one-byte values: class data is the hot loop of large files.
    """
    tokens = _ULEB128.findall(data, pos, min(end, pos + 5 * n))[:n]
    if len(tokens) < n:
        raise DexError(f"LEB128 data at {pos} runs past the end of the file")
    size = sum(map(len, tokens))
    if tokens and len(tokens[-1]) > 1 and tokens[-1][-1] > 0x7F and len(tokens[-1]) < 5:
        raise DexError(f"LEB128 value at {pos + size - len(tokens[-1])} is truncated")
    return _uleb_values(tokens), pos + size


def _utf16_key(text: str) -> bytes:
    """Sort key of the string pool: UTF-16 code unit order (how d8/dx sort strings)."""
    return text.encode("utf-16-be", "surrogatepass")


def _scan_code(data: bytes, start: int, end: int, code_off: int) -> CodeRefs:
    """Walk one instruction stream, collecting invoke targets and const-string operands."""
    invokes: list[int] = []
    strings: list[int] = []
    lengths = _LENGTHS
    invoke_ops = _INVOKE_OPS
    pos = start
    while pos < end:
        op = data[pos]
        # A nop whose high byte is 1, 2 or 3 starts a payload table (switch targets,
        # array data: data, not instructions); any other nop is one unit, as in ART.
        if op == 0 and 0 < data[pos + 1] <= _FILL_ARRAY_DATA:
            ident = data[pos + 1]
            need = 8 if ident == _FILL_ARRAY_DATA else 4
            if end - pos < need:
                raise DexError(f"code_item at {code_off}: truncated payload at {pos}")
            (size,) = _U16.unpack_from(data, pos + 2)
            if ident == _PACKED_SWITCH:
                units = 4 + 2 * size
            elif ident == _SPARSE_SWITCH:
                units = 2 + 4 * size
            else:
                (count,) = _U32.unpack_from(data, pos + 4)
                units = 4 + (size * count + 1) // 2
            if pos + 2 * units > end:
                break  # reported below
        else:
            units = lengths[op]
            if units == 0:
                raise DexError(f"code_item at {code_off}: unused opcode 0x{op:02x} at {pos}")
            if units > 1 and pos + 2 * units > end:
                break  # reported below
            if op in invoke_ops:
                invokes.append(data[pos + 2] | data[pos + 3] << 8)
            elif op == _CONST_STRING:
                strings.append(data[pos + 2] | data[pos + 3] << 8)
            elif op == _CONST_STRING_JUMBO:
                strings.append(_U32.unpack_from(data, pos + 2)[0])
        pos += 2 * units
    if pos != end:
        raise DexError(f"code_item at {code_off}: last instruction runs past the code")
    return CodeRefs(tuple(invokes), tuple(strings))
