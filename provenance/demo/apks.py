"""The story's APKs: the developer's signed builds and three bad variants of one app.

Inputs are small Apache-2.0 APKs from apksig's test data (``examples/apks/``). The
variants are what a store's review meets in practice, made here without Android
tools:

* **counterfeit** -- a shell that copies the app's manifest and resource table (so
  the same package and name) but none of its code or files, signed with a key
  whose certificate merely *claims* the developer's name;
* **repackaged** -- the real app with an extra permission and an added file, signed
  with that other key;
* **hot-swapped** -- the same version code with an extra permission, signed with the
  developer's own key (a build nobody reviewed).

Editing the binary manifest needs an AXML *writer*, which the library does not have
(:mod:`provenance.apk.axml` only reads): :func:`edit_manifest` rebuilds the string
pool and inserts ``<uses-permission>`` elements, reading the document with the
library's reader and checking the result with it. It handles what these inputs use
(UTF-16 string pool without styles) and refuses anything else.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from provenance.apk.axml import ANDROID_NAMESPACE, parse_axml, string_pool_reader
from provenance.apk.sign import sign_apk
from provenance.errors import InputError
from provenance.keystore import SignerKeySpec, load_signer

__all__ = ["edit_manifest", "rebuild_apk", "sign_with"]

_XML = 0x0003
_STRING_POOL = 0x0001
_RESOURCE_MAP = 0x0180
_START_ELEMENT = 0x0102
_END_ELEMENT = 0x0103
_NAME_ATTR = 0x01010003  # android:name
_NO_INDEX = 0xFFFFFFFF
_TYPE_STRING = 0x03
_FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def _encode_pool(strings: Sequence[str]) -> bytes:
    """A UTF-16 string pool chunk without styles."""
    data = bytearray()
    offsets = []
    for s in strings:
        units = s.encode("utf-16-le")
        n = len(units) // 2
        if n > 0x7FFF:
            raise InputError("manifest string too long for this editor")
        offsets.append(len(data))
        data += struct.pack("<H", n) + units + b"\0\0"
    while len(data) % 4:
        data += b"\0"
    header_size = 28
    strings_start = header_size + 4 * len(strings)
    size = strings_start + len(data)
    head = struct.pack("<HHIIIIII", _STRING_POOL, header_size, size, len(strings), 0, 0,
                       strings_start, 0)  # fmt: skip
    return head + b"".join(struct.pack("<I", o) for o in offsets) + bytes(data)


def _chunks(data: bytes, start: int, end: int) -> list[tuple[int, bytes]]:
    out = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise InputError("truncated manifest chunk")
        ctype, _hs, size = struct.unpack_from("<HHI", data, pos)
        if size < 8 or pos + size > end:
            raise InputError("malformed manifest chunk")
        out.append((ctype, data[pos : pos + size]))
        pos += size
    return out


def edit_manifest(
    data: bytes, *, package: str | None = None, add_permissions: Sequence[str] = ()
) -> bytes:
    """``AndroidManifest.xml`` (binary) with another package name and/or more permissions."""
    ctype, header_size, size = struct.unpack_from("<HHI", data, 0)
    if ctype != _XML or size != len(data):
        raise InputError("not a binary XML document")
    chunks = _chunks(data, header_size, size)
    if not chunks or chunks[0][0] != _STRING_POOL:
        raise InputError("the manifest does not start with a string pool")
    pool = chunks[0][1]
    count, styles = struct.unpack_from("<II", pool, 8)
    if styles:
        raise InputError("manifests with styled strings are not supported by this editor")
    read = string_pool_reader(pool, 0, len(pool))
    strings = [read(i) for i in range(count)]
    res_ids: list[int] = []
    for c, body in chunks:
        if c == _RESOURCE_MAP:
            res_ids = list(struct.unpack_from(f"<{(len(body) - 8) // 4}I", body, 8))
    manifest = parse_axml(data).elements[0]
    if package is not None:
        old = next(a for a in manifest.attributes if a.name == "package" and not a.namespace)
        strings[old.data] = package  # the attribute's raw and typed value share this index

    def index_of(s: str) -> int:
        if s not in strings:
            strings.append(s)
        return strings.index(s)

    inserted = b""
    if add_permissions:
        try:
            name = res_ids.index(_NAME_ATTR)
        except ValueError:
            raise InputError("the manifest has no android:name attribute to reuse") from None
        ns = strings.index(ANDROID_NAMESPACE)
        tag = index_of("uses-permission")
        for perm in add_permissions:
            value = index_of(perm)
            attr = struct.pack("<IIIHBBI", ns, name, value, 8, 0, _TYPE_STRING, value)
            ext = struct.pack("<IIHHHHHH", _NO_INDEX, tag, 20, 20, 1, 0, 0, 0)
            start = ext + attr
            inserted += struct.pack("<HHIII", _START_ELEMENT, 16, 16 + len(start), 0, _NO_INDEX)
            inserted += start
            inserted += struct.pack("<HHIIIII", _END_ELEMENT, 16, 24, 0, _NO_INDEX, _NO_INDEX, tag)
    body = _encode_pool(strings)
    placed = False
    for c, chunk in chunks[1:]:
        body += chunk
        if c == _START_ELEMENT and not placed:
            body += inserted  # right after <manifest ...>
            placed = True
    out = struct.pack("<HHI", _XML, 8, 8 + len(body)) + body
    parse_axml(out)  # the library's reader must accept what we wrote
    return out


def rebuild_apk(
    source: Path,
    out: Path,
    *,
    replace: Mapping[str, bytes] | None = None,
    add: Mapping[str, bytes] | None = None,
    keep: Sequence[str] | None = None,
) -> Path:
    """An unsigned copy of ``source``: entries replaced, added, or only ``keep`` kept.

    Signature files are dropped (the signer would drop them anyway); timestamps are
    fixed so the same inputs give the same bytes.
    """
    replace = dict(replace or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            name = info.filename
            if name.startswith("META-INF/") or name.endswith("/"):
                continue
            if keep is not None and name not in keep and name not in replace:
                continue
            data = replace.pop(name, None)
            if data is None:
                data = src.read(info)
            entry = zipfile.ZipInfo(name, date_time=info.date_time)
            entry.compress_type = info.compress_type
            dst.writestr(entry, data)
        for name, data in {**replace, **(add or {})}.items():
            entry = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)
    out.write_bytes(buf.getvalue())
    return out


def sign_with(unsigned: Path, out: Path, key: Path, cert: Path) -> Path:
    """Sign like ``apkprov sign --key K --cert C`` (v1+v2+v3, no v4 file)."""
    signer = load_signer(SignerKeySpec(key=str(key), cert=str(cert)))
    try:
        sign_apk(unsigned, out, [signer], v4=False)
    finally:
        close = getattr(signer, "close", None)
        if close is not None:
            close()
    return out
