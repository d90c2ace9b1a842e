"""DEX facts: the classes each ``classes*.dex`` defines and the methods it references.

Lists are sorted so that the facts (and their JSON) do not depend on the order d8
happened to write; the class-set fingerprint hashes the de-duplicated union, so it is
stable across re-signing, re-compression and resource changes -- what the repackaging
detector compares.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Final

from provenance.apk.dex import DexFile
from provenance.inspect.model import DexFacts

__all__ = ["DEX_NAME", "class_fingerprint", "dex_facts", "dex_order_issue"]

#: ``classes.dex``, ``classes2.dex``, ... at the root of the APK.
DEX_NAME: Final = re.compile(r"classes(\d*)\.dex")


def dex_facts(name: str, size: int, sha256: str, dex: DexFile) -> DexFacts:
    """Facts of one parsed DEX file (raises ``DexError`` if a table is malformed)."""
    classes = sorted(dex.class_names())
    refs = sorted(set(dex.method_ref_strings()))
    return DexFacts(
        name=name,
        size=size,
        sha256=sha256,
        version=dex.version,
        class_count=len(classes),
        method_ref_count=dex.method_count,
        string_count=dex.string_count,
        classes=tuple(classes),
        method_refs=tuple(refs),
        checksum_ok=dex.checksum_ok,
    )


def class_fingerprint(classes: Iterable[str]) -> str:
    """SHA-256 of the sorted, de-duplicated class descriptors joined by newlines."""
    h = hashlib.sha256()
    h.update("\n".join(sorted(set(classes))).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _dex_number(name: str) -> int | None:
    """1 for ``classes.dex``, N for ``classesN.dex`` (N >= 2), 0 for names never loaded."""
    m = DEX_NAME.fullmatch(name)
    if m is None:
        return None
    digits = m.group(1)
    if not digits:
        return 1
    if digits.startswith("0") or int(digits) < 2:
        return 0
    return int(digits)


def dex_order_issue(names: Iterable[str]) -> str | None:
    """Why some DEX files would not be loaded: the runtime stops at the first gap.

    ART loads ``classes.dex``, ``classes2.dex``, ``classes3.dex``, ... in order and
    ignores any file after a missing number (and ``classes1.dex`` altogether).
    """
    numbered = {n: k for n in names if (k := _dex_number(n)) is not None}
    present = set(numbered.values())
    k = 1
    while k in present:
        k += 1
    skipped = sorted(n for n, num in numbered.items() if num == 0 or num >= k)
    if skipped:
        return f"DEX files the runtime does not load: {', '.join(skipped)}"
    return None
