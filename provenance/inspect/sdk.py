"""Embedded SDK detection from class names, native library names and component names.

The signatures come from the shipped, versioned database (``provenance/data/sdk_db.json``,
built from εxodus, LibChecker-Rules and LibRadar by ``build_sdk_db.py``), loaded once
and offline. Matching is done on the sorted set of class descriptors with one binary
search per prefix, so its cost does not grow with the number of signatures times the
number of classes: a few thousand prefixes against a hundred thousand classes take
milliseconds.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from provenance.inspect.model import SdkHit

__all__ = ["SdkDatabase", "load_sdk_db"]


@dataclass(frozen=True, slots=True)
class _Sdk:
    source: str
    ident: str
    name: str
    categories: tuple[str, ...]


class SdkDatabase:
    """The SDK signatures, indexed for matching; see :func:`load_sdk_db`."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.version: str = raw["version"]
        self.sources: list[dict[str, str]] = raw["sources"]
        self.sdks = [_Sdk(s, i, n, tuple(c)) for s, i, n, c in raw["sdks"]]
        self.class_prefixes: list[tuple[str, int]] = sorted(
            (p, i) for p, i in raw["class_prefixes"]
        )
        self._by_prefix: dict[str, list[int]] = {}
        for p, i in self.class_prefixes:
            self._by_prefix.setdefault(p, []).append(i)
        self._longest = max((len(p) for p, _ in self.class_prefixes), default=0)
        self.class_infixes: list[tuple[str, int]] = [(p, i) for p, i in raw["class_infixes"]]
        self.native: dict[str, list[int]] = {}
        for name, i in raw["native"]:
            self.native.setdefault(name, []).append(i)
        self.native_regex = [(re.compile(p), i) for p, i in raw["native_regex"]]
        self.components: dict[str, list[int]] = {}
        for name, i in raw["components"]:
            self.components.setdefault(name, []).append(i)
        self.component_regex = [(re.compile(p), i) for p, i in raw["component_regex"]]

    def prefix_owner(self, descriptor: str) -> tuple[str, str] | None:
        """(SDK name, source) of the longest class prefix matching ``descriptor``, if any."""
        best: tuple[int, int] | None = None
        for prefix, i in self._candidates(descriptor):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), i)
        if best is None:
            return None
        sdk = self.sdks[best[1]]
        return sdk.name, sdk.source

    def _candidates(self, descriptor: str) -> Iterable[tuple[str, int]]:
        by_prefix = self._by_prefix
        for cut in range(2, min(len(descriptor), self._longest) + 1):
            for i in by_prefix.get(descriptor[:cut], ()):
                yield descriptor[:cut], i
        for infix, i in self.class_infixes:
            if infix in descriptor:
                yield infix, i

    def match(
        self,
        classes: Sequence[str],
        native_libs: Iterable[str] = (),
        components: Iterable[str] = (),
    ) -> list[SdkHit]:
        """SDKs evidenced by sorted class descriptors, native library and component names."""
        evidence: dict[int, set[str]] = {}
        for prefix, i in self.class_prefixes:
            j = bisect_left(classes, prefix)
            if j < len(classes) and classes[j].startswith(prefix):
                evidence.setdefault(i, set()).add(f"class:{prefix}")
        if self.class_infixes:
            joined = "\n".join(classes)
            for infix, i in self.class_infixes:
                if infix in joined:
                    evidence.setdefault(i, set()).add(f"class:*{infix}")
        for lib in set(native_libs):
            for i in self.native.get(lib, ()):
                evidence.setdefault(i, set()).add(f"native:{lib}")
            for rx, i in self.native_regex:
                if rx.fullmatch(lib):
                    evidence.setdefault(i, set()).add(f"native:{lib}")
        for comp in set(components):
            for i in self.components.get(comp, ()):
                evidence.setdefault(i, set()).add(f"component:{comp}")
            for rx, i in self.component_regex:
                if rx.fullmatch(comp):
                    evidence.setdefault(i, set()).add(f"component:{comp}")
        hits = []
        for i, ev in evidence.items():
            sdk = self.sdks[i]
            hits.append(SdkHit(sdk.name, sdk.source, sdk.ident, sdk.categories, tuple(sorted(ev))))
        hits.sort(key=lambda h: (h.source, h.name.casefold(), h.ident))
        return hits


@cache
def load_sdk_db() -> SdkDatabase:
    """The shipped SDK database (read from the package once per process)."""
    text = resources.files("provenance.data").joinpath("sdk_db.json").read_text("utf-8")
    return SdkDatabase(json.loads(text))


@cache
def load_indicators() -> dict[str, Any]:
    """The shipped dynamic-code-loading / hot-update indicators."""
    path = resources.files("provenance.data").joinpath("hotupdate_indicators.json")
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data
