"""The verity (fs-verity style) Merkle tree over 4 KiB pages.

Used twice with one definition: APK Signature Scheme v4 (the ``.idsig`` tree of the
whole file) and the VERITY_CHUNKED_SHA256 content digest of v2/v3 (the tree over
the three digested ZIP sections, salt of eight zero bytes). Layout and padding are
apksig's ``VerityTreeBuilder``: each level is the salted SHA-256 of every page of
the level below, zero-padded to a whole page, until a level fits in one page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from provenance.apk.parallel import WORKERS, executor

PAGE = 4096
DIGEST_SIZE = 32
_BATCH_PAGES = 256
_PARALLEL_MIN = 4 * 1024 * 1024


def _hash_run(view: memoryview, salt: bytes | None) -> bytes:
    """Salted SHA-256 of each page of ``view`` (whose length is a multiple of PAGE).

    Hashing straight from the view avoids copies; big runs are split over threads
    because ``hashlib`` releases the GIL for 4 KiB inputs.
    """

    def run(v: memoryview) -> bytes:
        out = bytearray()
        if salt:
            base = hashlib.sha256(salt)
            for off in range(0, len(v), PAGE):
                h = base.copy()
                h.update(v[off : off + PAGE])
                out += h.digest()
        else:
            sha = hashlib.sha256
            for off in range(0, len(v), PAGE):
                out += sha(v[off : off + PAGE]).digest()
        return bytes(out)

    if len(view) < _PARALLEL_MIN or WORKERS == 1:
        return run(view)
    step = _BATCH_PAGES * PAGE
    return b"".join(executor().map(run, [view[i : i + step] for i in range(0, len(view), step)]))


def _page_digest(page: bytes | bytearray, salt: bytes | None) -> bytes:
    """Salted SHA-256 of one page, zero-padded to PAGE bytes."""
    h = hashlib.sha256(salt or b"")
    h.update(page)
    if len(page) < PAGE:
        h.update(bytes(PAGE - len(page)))
    return h.digest()


def _pad(level: bytearray) -> bytearray:
    if len(level) % PAGE:
        level += bytes(PAGE - len(level) % PAGE)
    return level


def _as_segments(data: bytes | memoryview | Sequence[bytes | memoryview]) -> list[memoryview]:
    if isinstance(data, bytes | bytearray | memoryview):
        return [memoryview(data)]
    return [memoryview(s) for s in data]


def _leaf_level(segments: Sequence[memoryview], salt: bytes | None) -> bytearray:
    """Digests of the data pages, the data being the concatenation of ``segments``.

    Only a page that straddles two segments is copied; the last page is zero-padded.
    """
    out = bytearray()
    carry = bytearray()
    for seg in segments:
        seg = seg.cast("B") if seg.format != "B" or seg.ndim != 1 else seg
        pos = 0
        if carry:
            take = min(PAGE - len(carry), len(seg))
            carry += seg[:take]
            pos = take
            if len(carry) < PAGE:
                continue
            out += _page_digest(carry, salt)
            carry.clear()
        end = pos + (len(seg) - pos) // PAGE * PAGE
        out += _hash_run(seg[pos:end], salt)
        carry += seg[end:]
    if carry:
        out += _page_digest(carry, salt)
    return _pad(out)


def verity_tree(
    data: bytes | memoryview | Sequence[bytes | memoryview], salt: bytes | None = None
) -> bytes:
    """The whole verity tree, top level first, as apksig ``VerityTreeBuilder`` lays it out.

    Each level is the salted SHA-256 of every 4 KiB page of the level below
    (the data for the bottom one), zero-padded to a whole page; levels are added
    until one fits in a page. ``data`` may be a list of segments hashed as if
    concatenated (v2/v3 VERITY_CHUNKED_SHA256 digests the ZIP sections that way).
    Empty data gives an empty tree.
    """
    level = _leaf_level(_as_segments(data), salt)
    levels = [level]
    while len(level) > PAGE:
        level = _pad(bytearray(_hash_run(memoryview(level), salt)))
        levels.append(level)
    return b"".join(reversed(levels))


def root_from_tree(tree: bytes, salt: bytes | None = None) -> bytes:
    """Root hash: salted SHA-256 of the tree's first (top) page."""
    if len(tree) < PAGE:
        raise ValueError("verity tree is empty")
    h = hashlib.sha256(salt or b"")
    h.update(memoryview(tree)[:PAGE])
    return h.digest()


def verity_root(
    data: bytes | memoryview | Sequence[bytes | memoryview], salt: bytes | None = None
) -> bytes:
    """Root hash of the verity tree over ``data`` (ValueError when data is empty).

    For v2/v3 VERITY_CHUNKED_SHA256 call it with the three digested sections and
    an 8-byte zero salt, then append the total length as a little-endian int64.
    """
    return root_from_tree(verity_tree(data, salt), salt)
