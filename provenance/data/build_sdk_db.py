"""Regenerate the shipped SDK database and code-loading indicators from ``shared/data``.

The inspector must work offline and give the same answer on every machine, so it
reads a versioned copy of the third-party datasets that ships inside the package
(``sdk_db.json``, ``hotupdate_indicators.json``) rather than the shared folder or the
network. This script is the only way that copy is made: it keeps only what matching
needs (names, categories, signatures), converts every signature to the form the
matcher uses, records each source with its licence and commit, and derives the
database version from the sources, so running it twice gives identical bytes.

    python -m provenance.data.build_sdk_db [--shared ../shared/data] [--check]

Sources (attribution kept in ``NOTICE`` and in the ``sources`` field of the output):

- εxodus tracker database (``code_signature`` class-name patterns, categories),
  ODbL-1.0 / DbCL-1.0, as redistributed in MobSF's ``exodus_trackers``;
- LibChecker-Rules (native library, component and DEX package rules), Apache-2.0;
- LibRadar ``tag_rules.csv`` (package prefix → library, type), Apache-2.0.

F-Droid's scanner signatures (``fdroid_suss_default.json``) are AGPL and are NOT
shipped; the tests use them only as an independent cross-check.

Matching semantics fixed here (documented in ``docs/inspection.md``): εxodus
signatures are literal (every one is) and are matched as prefixes of the class name
(``com.flurry.`` → ``Lcom/flurry/``), those starting with ``.`` anywhere at a package
boundary; LibRadar and LibChecker DEX-package rules match whole packages
(``Lcom/flurry`` → ``Lcom/flurry/``); LibChecker native and component rules match the
exact name, or their regular expression in full.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = (
    Path(os.environ["APKPROV_SHARED"]) / "data"
    if os.environ.get("APKPROV_SHARED")
    else HERE.parent.parent.parent / "shared" / "data"
)
FORMAT = 1

_LITERAL = re.compile(r"[A-Za-z0-9_$.\-]+")
# LibChecker rule types (rules_v3.db): 0 native, 1 service, 2 activity, 3 receiver,
# 4 provider, 5 DEX package, 6 static library (not used).
_LC_COMPONENT_TYPES = {1: "service", 2: "activity", 3: "receiver", 4: "provider"}


def _descriptor_prefix(dotted: str) -> str:
    """``com.flurry.`` → ``Lcom/flurry/`` (a class-name prefix in descriptor form)."""
    return "L" + dotted.replace(".", "/")


def _exodus(path: Path, sdks: list[list[Any]], out: dict[str, list[list[Any]]]) -> str:
    trackers = json.loads(path.read_text(encoding="utf-8"))["trackers"]
    newest = ""
    for key in sorted(trackers, key=int):
        t = trackers[key]
        newest = max(newest, t.get("creation_date") or "")
        alts = [a for a in (t.get("code_signature") or "").split("|") if a]
        if not alts:
            continue
        idx = len(sdks)
        sdks.append(["exodus", str(t["id"]), t["name"], sorted(t.get("categories") or [])])
        for alt in alts:
            if not _LITERAL.fullmatch(alt):
                raise SystemExit(f"εxodus signature is not literal: {alt!r} ({t['name']})")
            if alt.startswith("."):
                out["class_infixes"].append([alt.replace(".", "/"), idx])
            else:
                out["class_prefixes"].append([_descriptor_prefix(alt), idx])
    return newest


def _libchecker(path: Path, sdks: list[list[Any]], out: dict[str, list[list[Any]]]) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    by_label: dict[str, int] = {}

    def sdk(label: str) -> int:
        if label not in by_label:
            by_label[label] = len(sdks)
            sdks.append(["libchecker", label, label, []])
        return by_label[label]

    seen: set[tuple[str, str]] = set()
    for rule in data["rules_db_v3"]:
        name, label, kind = rule["name"], rule["label"], int(rule["type"])
        regex = bool(rule["isRegexRule"])
        if kind == 0:
            table = "native_regex" if regex else "native"
        elif kind in _LC_COMPONENT_TYPES:
            table = "component_regex" if regex else "components"
        elif kind == 5:
            if regex:
                if not name.endswith("(.*)"):
                    raise SystemExit(f"LibChecker DEX regex not a package prefix: {name!r}")
                name = name[: -len("(.*)")].rstrip(".")
            table = "class_prefixes"
            name = _descriptor_prefix(name) + "/"
        else:
            continue
        if (table, name) in seen:
            continue
        seen.add((table, name))
        if regex:
            re.compile(name)
        out[table].append([name, sdk(label)])
    # Names only in the per-category files (not yet in the rules database).
    tables = {
        "native-libs": "native",
        "activities-libs": "components",
        "services-libs": "components",
        "receivers-libs": "components",
        "providers-libs": "components",
    }
    for category, table in tables.items():
        for name, info in sorted(data["categories"].get(category, {}).items()):
            if (table, name) not in seen:
                seen.add((table, name))
                out[table].append([name, sdk(info["label"])])
    source: str = data["source"]
    return source.split()[-1][:8]


def _libradar(path: Path, sdks: list[list[Any]], out: dict[str, list[list[Any]]]) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            package, name = row["Package Name"].strip(), row["Library Name"].strip()
            if not package.startswith("L") or not name or name == "no":
                continue  # "no": LibRadar's marker for obfuscated package names
            idx = len(sdks)
            kind = row["Type"].strip()
            sdks.append(["libradar", package, name, [kind] if kind else []])
            out["class_prefixes"].append([package.rstrip("/") + "/", idx])


def build(shared: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SDK database and the indicator file, as JSON-ready objects."""
    sdk_dir = shared / "sdk"
    sdks: list[list[Any]] = []
    tables: dict[str, list[list[Any]]] = {
        "class_prefixes": [],
        "class_infixes": [],
        "native": [],
        "native_regex": [],
        "components": [],
        "component_regex": [],
    }
    exodus_date = _exodus(sdk_dir / "exodus_trackers_compact.json", sdks, tables)
    lc_commit = _libchecker(sdk_dir / "libchecker_rules" / "libchecker_rules.json", sdks, tables)
    _libradar(sdk_dir / "libradar" / "tag_rules.csv", sdks, tables)
    for rows in tables.values():
        rows.sort()
    indicators = json.loads((shared / "hotupdate_indicators.json").read_text(encoding="utf-8"))
    sources = [
        {
            "id": "exodus",
            "name": "εxodus tracker database (Exodus Privacy)",
            "licence": "ODbL-1.0 (database) + DbCL-1.0 (contents)",
            "origin": "reports.exodus-privacy.eu.org/api/trackers, via MobSF @62563ca4 "
            "mobsf/signatures/exodus_trackers",
            "version": f"newest entry {exodus_date}",
        },
        {
            "id": "libchecker",
            "name": "LibChecker-Rules",
            "licence": "Apache-2.0",
            "origin": f"github.com/LibChecker/LibChecker-Rules @{lc_commit}",
            "version": lc_commit,
        },
        {
            "id": "libradar",
            "name": "LibRadar tag_rules.csv",
            "licence": "Apache-2.0",
            "origin": "github.com/pkumza/LibRadar @2fa38911 "
            "LibRadar/Data/IntermediateData/tag_rules.csv",
            "version": "2fa38911",
        },
    ]
    body = {"sdks": sdks, **tables}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    db = {
        "format": FORMAT,
        "version": f"{FORMAT}.{exodus_date}.{lc_commit}.{digest}",
        "notice": "Compiled from third-party datasets; see NOTICE for attribution and licences.",
        "sources": sources,
        **body,
    }
    ind_digest = hashlib.sha256(json.dumps(indicators, sort_keys=True).encode()).hexdigest()
    indicators = {"version": ind_digest[:12], **indicators}
    return db, indicators


def _dump(obj: dict[str, Any]) -> str:
    # One row per line: small diffs when a dataset changes, still compact.
    lines = ["{"]
    items = list(obj.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], list):
            lines.append(f"{json.dumps(key)}: [")
            rows = [json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value]
            lines.append(",\n".join(rows))
            lines.append(f"]{comma}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) ``sdk_db.json`` and ``hotupdate_indicators.json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    p.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    p.add_argument("--check", action="store_true", help="fail if the shipped files differ")
    args = p.parse_args(argv)
    db, indicators = build(args.shared)
    outputs = {
        "sdk_db.json": _dump(db),
        "hotupdate_indicators.json": json.dumps(indicators, indent=1, ensure_ascii=False) + "\n",
    }
    stale = []
    for name, text in outputs.items():
        target = args.out / name
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            target.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)} (run python -m provenance.data.build_sdk_db)")
        return 1
    if not args.check:
        print(f"sdk_db.json {db['version']}: {len(db['sdks'])} SDKs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
