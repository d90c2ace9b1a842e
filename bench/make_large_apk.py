#!/usr/bin/env python3
"""Build a large, deterministic, signed APK for benchmarks (cached under bench/out/).

The APK holds ``AndroidManifest.xml``, ``classes.dex`` and ``resources.arsc`` read from
the apksig corpus's ``golden-aligned-in.apk`` (a real, tiny app), plus a few thousand
generated entries from a seeded PRNG:

* ``lib/arm64-v8a/*.so``: random bytes, stored, 4 KiB page-aligned;
* ``assets/blobs/*.bin``: random bytes, stored, 4-byte aligned;
* ``assets/packed/*.dat``: random bytes, deflated (incompressible: costs a full inflate);
* ``assets/text/*.txt``: generated English-like text, deflated (about 3-4x smaller);
* ``res/drawable-*/``, ``res/xml/``: thousands of small stored and deflated files.

Stored entries are aligned the way ``zipalign -p`` / apksigner do it (an ``0xd935``
alignment extra field), then the file is signed v1+v2+v3 by Debian's ``apksigner``
(via ``tests/reference.py``) with the corpus key ``rsa-2048``. Same parameters give the
same bytes: the PRNG is seeded, timestamps are fixed, and RSA PKCS#1 v1.5 signing is
deterministic. A sidecar ``<apk>.json`` records the parameters and the SHA-256; a
matching sidecar means the APK is reused.

    python bench/make_large_apk.py                 # bench/out/large-88mb-3000f-s1.apk
    python bench/make_large_apk.py --size-mb 2 --files 200 --out /tmp/small.apk
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
sys.path.insert(0, str(REPO_ROOT / "tests"))

import reference  # noqa: E402  (tests/reference.py: runs Debian's apksigner)

FORMAT_VERSION = 1  # bump when the layout changes, to invalidate cached APKs
DATE_TIME = (2008, 1, 1, 0, 0, 0)
ALIGNMENT_EXTRA_ID = 0xD935  # what apksigner/zipalign -p write for alignment padding
SOURCE_APK = "golden-aligned-in.apk"
COPIED_ENTRIES = ("AndroidManifest.xml", "classes.dex", "resources.arsc")

_WORD_TEXT = (
    "apk signature scheme verifier certificate digest lineage rotation signer manifest "
    "android package release transparency log checkpoint witness inclusion proof tile "
    "entry bundle statement envelope predicate policy risk finding verdict terminal feed "
    "the of and to in is that for it as with was on be by this are from at or an have not "
    "which but all were when we there can been has more if will one would so what about "
    "store shelf install update hotfix framework dynamic code loading permission network"
)
WORDS = _WORD_TEXT.split(" ")
# fmt: off
SYLLABLES = ("ka", "ri", "to", "me", "an", "de", "lo", "su", "vi", "ne",
             "po", "ra", "sh", "th", "st", "ing", "ed", "er", "al", "ion")
# fmt: on


@dataclass(frozen=True)
class Params:
    size_mb: int
    files: int
    seed: int
    format_version: int = FORMAT_VERSION

    def default_name(self) -> str:
        return f"large-{self.size_mb}mb-{self.files}f-s{self.seed}.apk"


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes
    deflate: bool
    align: int = 4  # stored entries only


# ------------------------------------------------------------------ content


@dataclass(frozen=True)
class Planned:
    name: str
    kind: str  # "copy", "random", "text"
    size: int  # uncompressed bytes
    deflate: bool
    align: int = 4


@dataclass(frozen=True)
class Vocabulary:
    words: list[str]
    cum_weights: list[float]


def _vocabulary(seed: int) -> Vocabulary:
    """WORDS plus 3000 made-up words, Zipf-weighted: deflates about 3.6x, like prose."""
    rng = random.Random(f"{seed}:vocabulary")
    words = WORDS + ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(3000)]
    return Vocabulary(words, list(itertools.accumulate(1.0 / (i + 1) for i in range(len(words)))))


def _text(rng: random.Random, vocab: Vocabulary, n_bytes: int) -> bytes:
    """English-like text of exactly ``n_bytes``: lines of 12 words and a number."""
    out: list[bytes] = []
    size = 0
    while size < n_bytes:
        ws = rng.choices(vocab.words, cum_weights=vocab.cum_weights, k=240)
        lines = (" ".join(ws[i : i + 12]) for i in range(0, 240, 12))
        chunk = (".\n".join(lines) + f" {rng.getrandbits(32):x}.\n").encode()
        out.append(chunk)
        size += len(chunk)
    return b"".join(out)[:n_bytes]


TEXT_RATIO = 3.6  # deflate ratio of _text() at level 6; only sizes the budget


def plan(params: Params) -> list[Planned]:
    """Names, kinds and sizes of all entries, in archive order (cheap: no data)."""
    total = params.size_mb * 1024 * 1024
    rng = random.Random(f"{params.seed}:plan")

    def split(budget: int, count: int) -> list[int]:
        if count <= 0:
            return []
        weights = [rng.uniform(0.5, 1.5) for _ in range(count)]
        scale = budget / sum(weights)
        return [max(1, int(w * scale)) for w in weights]

    n_libs, n_blobs, n_packed, n_text = 24, 40, 60, 120
    n_small = params.files - n_libs - n_blobs - n_packed - n_text - len(COPIED_ENTRIES)
    head = [Planned(n, "copy", 0, deflate=n != "resources.arsc") for n in COPIED_ENTRIES]
    libs = [
        Planned(f"lib/arm64-v8a/libbench{i:02d}.so", "random", size, False, 4096)
        for i, size in enumerate(split(total * 24 // 100, n_libs))
    ]
    rest: list[Planned] = []
    for i, size in enumerate(split(total * 8 // 100, n_small)):
        if i % 3 == 2:  # small deflated XML-ish text
            rest.append(
                Planned(f"res/xml/config_{i:05d}.xml", "text", int(size * TEXT_RATIO), True)
            )
        else:  # small stored "images"
            density = ("mdpi", "hdpi", "xhdpi", "xxhdpi")[i % 4]
            rest.append(Planned(f"res/drawable-{density}/img_{i:05d}.png", "random", size, False))
    rest += [
        Planned(f"assets/blobs/blob_{i:03d}.bin", "random", size, False)
        for i, size in enumerate(split(total * 24 // 100, n_blobs))
    ]
    rest += [
        Planned(f"assets/packed/packed_{i:03d}.dat", "random", size, True)
        for i, size in enumerate(split(total * 22 // 100, n_packed))
    ]
    rest += [
        Planned(f"assets/text/doc_{i:03d}.txt", "text", size, True)
        for i, size in enumerate(split(int(total * 20 // 100 * TEXT_RATIO), n_text))
    ]
    rng.shuffle(rest)  # big and small entries interleaved, as in real APKs
    return head + libs + rest


def _entries(params: Params, copied: dict[str, bytes]) -> Iterator[Entry]:
    """The entries with their data; each entry's bytes depend only on seed and name."""
    vocab = _vocabulary(params.seed)
    for p in plan(params):
        if p.kind == "copy":
            yield Entry(p.name, copied[p.name], p.deflate, p.align)
            continue
        rng = random.Random(f"{params.seed}:{p.name}")
        data = rng.randbytes(p.size) if p.kind == "random" else _text(rng, vocab, p.size)
        yield Entry(p.name, data, p.deflate, p.align)


# ------------------------------------------------------------------ writing


def _alignment_extra(data_offset_without_extra: int, align: int) -> bytes:
    """An 0xd935 extra field that puts the entry's data on an ``align`` boundary."""
    # header id (2) + size (2) + alignment (2) + zero padding
    base = data_offset_without_extra + 6
    pad = (-base) % align
    return struct.pack("<HHH", ALIGNMENT_EXTRA_ID, 2 + pad, align) + b"\0" * pad


def write_unsigned(params: Params, out: Path, source_apk: Path) -> dict[str, Any]:
    """Write the unsigned, aligned APK; return statistics about its composition."""
    with zipfile.ZipFile(source_apk) as src:
        copied = {name: src.read(name) for name in COPIED_ENTRIES}
    stats: dict[str, Any] = {
        "entries": 0,
        "stored_entries": 0,
        "deflated_entries": 0,
        "stored_bytes": 0,
        "deflated_uncompressed_bytes": 0,
        "deflated_compressed_bytes": 0,
    }
    with zipfile.ZipFile(out, "w", allowZip64=False) as zf:
        for entry in _entries(params, copied):
            info = zipfile.ZipInfo(entry.name, date_time=DATE_TIME)
            info.create_system = 0
            info.external_attr = 0o644 << 16
            name_len = len(entry.name.encode("utf-8"))
            if entry.deflate:
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, entry.data, compresslevel=6)
                stats["deflated_entries"] += 1
                stats["deflated_uncompressed_bytes"] += info.file_size
                stats["deflated_compressed_bytes"] += info.compress_size
            else:
                info.compress_type = zipfile.ZIP_STORED
                offset = zf.fp.tell() if zf.fp is not None else 0
                info.extra = _alignment_extra(offset + 30 + name_len, entry.align)
                zf.writestr(info, entry.data)
                data_offset = offset + 30 + name_len + len(info.extra)
                assert data_offset % entry.align == 0, (entry.name, data_offset)
                stats["stored_entries"] += 1
                stats["stored_bytes"] += info.file_size
            stats["entries"] += 1
    return stats


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build(
    params: Params,
    out: Path | None = None,
    *,
    force: bool = False,
    sign: bool = True,
    quiet: bool = False,
) -> Path:
    """Build (or reuse) the APK; return its path. Raises RuntimeError with a reason."""
    corpus = reference.corpus_dir()
    source_apk = corpus / SOURCE_APK
    key, cert = corpus / "rsa-2048.pk8", corpus / "rsa-2048.x509.pem"
    for needed in (source_apk, key, cert):
        if not needed.is_file():
            raise RuntimeError(f"{needed} not found: set APKPROV_SHARED to the shared folder")
    if out is None:
        name = params.default_name()
        out = OUT_DIR / (name if sign else name.replace(".apk", "-unsigned.apk"))
    sidecar = out.with_name(out.name + ".json")
    wanted = {"params": asdict(params), "signed": sign}

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)

    if not force and out.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            if {k: meta.get(k) for k in wanted} == wanted and meta.get("size") == (
                out.stat().st_size
            ):
                say(f"reusing {out} (sidecar matches; --force to rebuild)")
                return out
        except (OSError, ValueError):
            pass
    if sign and not reference.available():
        raise RuntimeError(f"cannot sign: {reference.unavailable_reason()}")

    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        unsigned = Path(tmp) / "unsigned.apk"
        stats = write_unsigned(params, unsigned, source_apk)
        t_write = time.perf_counter() - t0
        say(
            f"wrote {stats['entries']} entries, {unsigned.stat().st_size:,} bytes in {t_write:.1f}s"
        )
        if sign:
            signed = Path(tmp) / "signed.apk"
            res = reference.sign(
                unsigned, signed, key=key, cert=cert, v1=True, v2=True, v3=True, v4=False
            )
            say(f"signed v1+v2+v3 with Debian's apksigner in {res.seconds:.1f}s")
            os.replace(signed, out)
        else:
            os.replace(unsigned, out)
    meta = {
        **wanted,
        "size": out.stat().st_size,
        "sha256": _sha256(out),
        "composition": stats,
        "build_seconds": round(time.perf_counter() - t0, 2),
        "key": "rsa-2048 (apksig corpus)",
        "source_entries": f"{SOURCE_APK}: {', '.join(COPIED_ENTRIES)}",
    }
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    say(f"{out}: {meta['size']:,} bytes, sha256 {meta['sha256']}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=88, help="target size in MiB (default 88)")
    ap.add_argument("--files", type=int, default=3000, help="number of entries (default 3000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="output path (default bench/out/large-...apk)")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--unsigned", action="store_true", help="skip signing (no apksigner)")
    ns = ap.parse_args(argv)
    if ns.size_mb < 1 or ns.files < 250:
        ap.error("--size-mb must be >= 1 and --files >= 250")
    try:
        path = build(
            Params(ns.size_mb, ns.files, ns.seed), ns.out, force=ns.force, sign=not ns.unsigned
        )
    except (RuntimeError, reference.ApksignerError) as exc:
        print(f"make_large_apk: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
