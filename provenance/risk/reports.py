"""Terminal reports of code loaded at run time: an input to the risk engine.

Static inspection sees what an APK *can* load; a terminal (a device-side agent, an
OEM security service) can report what an app *did* load -- a DEX or native library
fetched after review. Such a report is direct evidence of a hot swap. The JSON form
(``apkprov.runtime-report/1``) is one report or an array of them::

    {"schema": "apkprov.runtime-report/1",
     "package": "com.example.app", "version_code": 42, "apk_sha256": "…",
     "reporter": "terminal-7", "reported_at": "2025-01-02T03:04:05Z",
     "loaded": [{"kind": "dex", "sha256": "…", "path": "/data/user/0/…/patch.dex",
                 "source": "https://cdn.example/patch.dex",
                 "loader": "Ldalvik/system/DexClassLoader;"}]}

Reports are read strictly like listings (unknown fields refused, sizes bounded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import InputError
from provenance.metadata.jsonin import Node, parse_json, read_bounded
from provenance.metadata.listing import MAX_ITEMS, MAX_NAME, MAX_TEXT, normalize_sha256

SCHEMA = "apkprov.runtime-report/1"
KINDS = frozenset({"dex", "jar", "apk", "native", "script", "other"})
MAX_REPORT_BYTES = 16 * 1024 * 1024
MAX_REPORT_FILES = 10_000


class ReportError(InputError):
    """A runtime report is malformed."""


class _ReportNode(Node):
    __slots__ = ()
    error = ReportError


@dataclass(frozen=True)
class LoadedCode:
    """One piece of code the app loaded at run time."""

    kind: str
    sha256: str | None = None
    path: str | None = None
    source: str | None = None
    loader: str | None = None

    def describe(self) -> str:
        """A one-line description for evidence."""
        parts = [self.kind]
        for label, v in (("from", self.source), ("at", self.path), ("via", self.loader)):
            if v:
                parts.append(f"{label} {v}")
        return " ".join(parts)


@dataclass(frozen=True)
class RuntimeReport:
    """What one terminal saw one app load."""

    package: str
    loaded: tuple[LoadedCode, ...]
    version_code: int | None = None
    apk_sha256: str | None = None
    reporter: str | None = None
    reported_at: str | None = None
    source: str = ""

    def applies_to(self, package: str | None, version_code: int | None, sha256: str) -> bool:
        """Whether the report is about this APK (package, and file or version if named)."""
        if package != self.package:
            return False
        if self.apk_sha256 is not None:
            return self.apk_sha256 == sha256
        return self.version_code is None or self.version_code == version_code


def load_reports(path: str | os.PathLike[str]) -> list[RuntimeReport]:
    """Reports from a JSON file, or from every ``*.json`` file in a folder."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if len(files) > MAX_REPORT_FILES:
        raise ReportError(f"{p}: more than {MAX_REPORT_FILES} report files")
    out: list[RuntimeReport] = []
    for f in files:
        raw = read_bounded(f, MAX_REPORT_BYTES, "report", ReportError)
        doc = parse_json(raw, str(f), ReportError)
        out.extend(reports_from_json(doc, str(f)))
    return out


def reports_from_json(doc: Any, source: str) -> list[RuntimeReport]:
    """Reports from a parsed JSON document (one report or an array)."""
    root = _ReportNode(doc, source)
    nodes = root.array(MAX_ITEMS) if isinstance(doc, list) else [root]
    return [_report(n, source) for n in nodes]


def _report(n: Node, source: str) -> RuntimeReport:
    n.obj().only(
        {"schema", "package", "version_code", "apk_sha256", "reporter", "reported_at", "loaded"}
    )
    schema = n.req("schema").string(MAX_NAME)
    if schema != SCHEMA:
        n.fail(f"unsupported report schema {schema!r} (this version reads {SCHEMA!r})")
    loaded = []
    for item in n.req("loaded").array(MAX_ITEMS):
        item.obj().only({"kind", "sha256", "path", "source", "loader"})
        kind = item.req("kind").string(MAX_NAME)
        if kind not in KINDS:
            item.fail(f"kind must be one of {', '.join(sorted(KINDS))}, got {kind!r}")
        sha = item.get("sha256")
        loaded.append(
            LoadedCode(
                kind=kind,
                sha256=normalize_sha256(sha.string(MAX_NAME), sha.path, ReportError)
                if sha
                else None,
                path=_opt(item, "path"),
                source=_opt(item, "source"),
                loader=_opt(item, "loader"),
            )
        )
    if not loaded:
        n.fail("a report lists at least one piece of loaded code")
    vc = n.get("version_code")
    sha = n.get("apk_sha256")
    return RuntimeReport(
        package=n.req("package").string(MAX_NAME),
        loaded=tuple(loaded),
        version_code=vc.integer() if vc is not None else None,
        apk_sha256=normalize_sha256(sha.string(MAX_NAME), sha.path, ReportError) if sha else None,
        reporter=_opt(n, "reporter"),
        reported_at=_opt(n, "reported_at"),
        source=source,
    )


def _opt(n: Node, key: str) -> str | None:
    v = n.get(key)
    return None if v is None else v.string(MAX_TEXT)
