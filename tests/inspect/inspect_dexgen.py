"""A minimal DEX writer for tests: valid files (dexdump verifies them) built from a few lines.

Classes with static methods whose code is a list of instructions: ``invoke-*`` (35c),
``invoke-*/range`` (3rc), ``invoke-polymorphic`` (45cc), ``const-string``,
``const-string/jumbo``, raw code units and the three payload pseudo-instructions. The
writer sorts every index table the way the format requires, lays out a ``map_list``
and fixes up the checksum and signature, so the output is what d8 would produce in
structure (not in code quality).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

Proto = tuple[str, tuple[str, ...]]  # (return type, parameter types)
MRef = tuple[str, str, Proto]  # (class, name, proto)

INVOKE_VIRTUAL = 0x6E
INVOKE_SUPER = 0x6F
INVOKE_DIRECT = 0x70
INVOKE_STATIC = 0x71
INVOKE_INTERFACE = 0x72
INVOKE_STATIC_RANGE = 0x77
INVOKE_POLYMORPHIC = 0xFA


@dataclass
class Insn:
    """One instruction: kind is invoke / invoke-range / polymorphic / const-string /
    const-string-jumbo / raw / packed-switch / sparse-switch / fill-array / return-void."""

    kind: str
    op: int = 0
    ref: MRef | None = None
    text: str | None = None
    units: tuple[int, ...] = ()
    size: int = 0
    width: int = 1


@dataclass
class Method:
    name: str
    proto: Proto = ("V", ())
    code: list[Insn] | None = field(default_factory=lambda: [Insn("return-void")])
    flags: int = 0x0009  # public static


@dataclass
class ClassSpec:
    descriptor: str
    superclass: str | None = "Ljava/lang/Object;"
    methods: list[Method] = field(default_factory=list)


def invoke(cls: str, name: str, proto: Proto = ("V", ()), op: int = INVOKE_STATIC) -> Insn:
    return Insn("invoke", op=op, ref=(cls, name, proto))


def invoke_range(cls: str, name: str, proto: Proto = ("V", ())) -> Insn:
    return Insn("invoke-range", op=INVOKE_STATIC_RANGE, ref=(cls, name, proto))


def const_string(text: str, jumbo: bool = False) -> Insn:
    return Insn("const-string-jumbo" if jumbo else "const-string", text=text)


def _shorty(t: str) -> str:
    return "L" if t[0] in "L[" else t


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def mutf8(s: str) -> bytes:
    out = bytearray()
    for unit in struct.unpack(f">{len(_utf16_key(s)) // 2}H", _utf16_key(s)):
        if unit == 0:
            out += b"\xc0\x80"
        elif unit < 0x80:
            out.append(unit)
        elif unit < 0x800:
            out += bytes([0xC0 | unit >> 6, 0x80 | unit & 0x3F])
        else:
            out += bytes([0xE0 | unit >> 12, 0x80 | (unit >> 6) & 0x3F, 0x80 | unit & 0x3F])
    return bytes(out)


def uleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _align(buf: bytearray, n: int = 4) -> None:
    while len(buf) % n:
        buf.append(0)


def build_dex(
    classes: list[ClassSpec], version: int = 35, extra_strings: tuple[str, ...] = ()
) -> bytes:
    """A valid DEX file defining ``classes`` (in the given order: superclasses first)."""
    strings: set[str] = set(extra_strings)
    types: set[str] = set()
    protos: set[Proto] = set()
    mrefs: set[MRef] = set()

    def add_proto(p: Proto) -> None:
        protos.add(p)
        types.add(p[0])
        types.update(p[1])

    for c in classes:
        types.add(c.descriptor)
        if c.superclass:
            types.add(c.superclass)
        for m in c.methods:
            mrefs.add((c.descriptor, m.name, m.proto))
            add_proto(m.proto)
            for insn in m.code or ():
                if insn.ref:
                    mrefs.add(insn.ref)
                    types.add(insn.ref[0])
                    add_proto(insn.ref[2])
                if insn.text is not None:
                    strings.add(insn.text)
    for cls, name, _ in mrefs:
        types.add(cls)
        strings.add(name)
    strings.update(types)
    for ret, params in protos:
        strings.add(_shorty(ret) + "".join(_shorty(p) for p in params))
    string_list = sorted(strings, key=_utf16_key)
    sidx = {s: i for i, s in enumerate(string_list)}
    type_list = sorted(types, key=lambda t: sidx[t])
    tidx = {t: i for i, t in enumerate(type_list)}
    proto_list = sorted(protos, key=lambda p: (tidx[p[0]], [tidx[x] for x in p[1]]))
    pidx = {p: i for i, p in enumerate(proto_list)}
    method_list = sorted(mrefs, key=lambda m: (tidx[m[0]], sidx[m[1]], pidx[m[2]]))
    midx = {m: i for i, m in enumerate(method_list)}

    header_size = 0x78 if version >= 41 else 0x70
    string_ids_off = header_size
    type_ids_off = string_ids_off + 4 * len(string_list)
    proto_ids_off = type_ids_off + 4 * len(type_list)
    method_ids_off = proto_ids_off + 12 * len(proto_list)
    class_defs_off = method_ids_off + 8 * len(method_list)
    data_off = class_defs_off + 32 * len(classes)

    data = bytearray()  # the data section, offsets relative to data_off
    map_items: list[tuple[int, int, int]] = []

    # type lists (parameters)
    params_off: dict[tuple[str, ...], int] = {}
    tl_start = len(data)
    for p in proto_list:
        if p[1] and p[1] not in params_off:
            _align(data)
            params_off[p[1]] = data_off + len(data)
            data += struct.pack("<I", len(p[1])) + b"".join(
                struct.pack("<H", tidx[t]) for t in p[1]
            )
    if params_off:
        map_items.append((0x1001, len(params_off), data_off + tl_start))

    # code items
    _align(data)
    code_start = len(data)
    code_off: dict[tuple[int, int], int] = {}
    for ci, c in enumerate(classes):
        for mi, m in enumerate(c.methods):
            if m.code is None:
                continue
            _align(data)
            code_off[(ci, mi)] = data_off + len(data)
            units = _assemble(m.code, midx, sidx)
            ins = sum(2 if p in "JD" else 1 for p in m.proto[1])
            data += struct.pack("<HHHHII", max(ins, 5), ins, 5, 0, 0, len(units))
            data += struct.pack(f"<{len(units)}H", *units)
    if code_off:
        map_items.append((0x2001, len(code_off), data_off + code_start))

    # string data
    str_start = len(data)
    str_off = []
    for s in string_list:
        str_off.append(data_off + len(data))
        data += uleb(len(_utf16_key(s)) // 2) + mutf8(s) + b"\x00"
    if string_list:
        map_items.append((0x2002, len(string_list), data_off + str_start))

    # class data
    cd_start = len(data)
    class_data_off = []
    for ci, c in enumerate(classes):
        if not c.methods:
            class_data_off.append(0)
            continue
        class_data_off.append(data_off + len(data))
        ms = sorted(
            ((midx[(c.descriptor, m.name, m.proto)], mi, m) for mi, m in enumerate(c.methods))
        )
        data += uleb(0) + uleb(0) + uleb(len(ms)) + uleb(0)
        last = 0
        for k, (idx, mi, m) in enumerate(ms):
            data += uleb(idx - (last if k else 0)) + uleb(m.flags) + uleb(code_off.get((ci, mi), 0))
            last = idx
    n_cd = sum(1 for x in class_data_off if x)
    if n_cd:
        map_items.append((0x2000, n_cd, data_off + cd_start))

    # map list
    _align(data)
    map_off = data_off + len(data)
    items = [
        (0x0000, 1, 0),
        *([(0x0001, len(string_list), string_ids_off)] if string_list else []),
        *([(0x0002, len(type_list), type_ids_off)] if type_list else []),
        *([(0x0003, len(proto_list), proto_ids_off)] if proto_list else []),
        *([(0x0005, len(method_list), method_ids_off)] if method_list else []),
        *([(0x0006, len(classes), class_defs_off)] if classes else []),
        *map_items,
        (0x1000, 1, map_off),
    ]
    items.sort(key=lambda x: x[2])
    data += struct.pack("<I", len(items))
    for t, n, off in items:
        data += struct.pack("<HHII", t, 0, n, off)

    out = bytearray(header_size)
    out += b"".join(struct.pack("<I", o) for o in str_off)
    out += b"".join(struct.pack("<I", sidx[t]) for t in type_list)
    for ret, params in proto_list:
        shorty = _shorty(ret) + "".join(_shorty(p) for p in params)
        out += struct.pack(
            "<III", sidx[shorty], tidx[ret], params_off.get(params, 0) if params else 0
        )
    for cls, name, proto in method_list:
        out += struct.pack("<HHI", tidx[cls], pidx[proto], sidx[name])
    for ci, c in enumerate(classes):
        sup = tidx[c.superclass] if c.superclass else 0xFFFFFFFF
        out += struct.pack(
            "<8I", tidx[c.descriptor], 0x0001, sup, 0, 0xFFFFFFFF, 0, class_data_off[ci], 0
        )
    assert len(out) == data_off
    out += data
    struct.pack_into(
        "<8sI20s20I",
        out,
        0,
        b"dex\n%03d\x00" % version,
        0,
        b"\x00" * 20,
        len(out),
        header_size,
        0x12345678,
        0,
        0,
        map_off,
        len(string_list),
        string_ids_off if string_list else 0,
        len(type_list),
        type_ids_off if type_list else 0,
        len(proto_list),
        proto_ids_off if proto_list else 0,
        0,
        0,
        len(method_list),
        method_ids_off if method_list else 0,
        len(classes),
        class_defs_off if classes else 0,
        len(out) - data_off,
        data_off,
    )
    if version >= 41:
        struct.pack_into("<II", out, 0x70, len(out), 0)  # container size, header offset
    out[12:32] = hashlib.sha1(bytes(out[32:])).digest()
    struct.pack_into("<I", out, 8, zlib.adler32(bytes(out[12:])))
    return bytes(out)


def _assemble(code: list[Insn], midx: dict[MRef, int], sidx: dict[str, int]) -> list[int]:
    units: list[int] = []
    for insn in code:
        k = insn.kind
        if k == "return-void":
            units.append(0x000E)
        elif k == "invoke":
            assert insn.ref is not None
            units += [0x1000 | insn.op, midx[insn.ref], 0x0000]  # one argument: v0
        elif k == "invoke-range":
            assert insn.ref is not None
            units += [0x0000 | insn.op, midx[insn.ref], 0x0000]  # no arguments
        elif k == "polymorphic":
            assert insn.ref is not None
            units += [0x1000 | INVOKE_POLYMORPHIC, midx[insn.ref], 0x0000, 0]
        elif k == "const-string":
            assert insn.text is not None
            units += [0x001A, sidx[insn.text]]
        elif k == "const-string-jumbo":
            assert insn.text is not None
            s = sidx[insn.text]
            units += [0x001B, s & 0xFFFF, s >> 16]
        elif k == "raw":
            units += list(insn.units)
        elif k == "packed-switch":
            if len(units) % 2:
                units.append(0)  # payloads are 4-byte aligned (nop padding)
            units += [0x0100, insn.size, 0, 0] + [0, 0] * insn.size
        elif k == "sparse-switch":
            if len(units) % 2:
                units.append(0)
            units += [0x0200, insn.size] + [0, 0] * (2 * insn.size)
        elif k == "fill-array":
            if len(units) % 2:
                units.append(0)
            if insn.units:  # chosen 16-bit elements (e.g. bytes that look like an invoke)
                units += [0x0300, 2, len(insn.units) & 0xFFFF, len(insn.units) >> 16]
                units += list(insn.units)
            else:
                nbytes = insn.size * insn.width
                units += [0x0300, insn.width, insn.size & 0xFFFF, insn.size >> 16]
                units += [0x5A5A] * ((nbytes + 1) // 2)
        else:
            raise ValueError(k)
    return units
