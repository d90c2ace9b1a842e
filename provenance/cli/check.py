"""``apkprov check``: shelf inspection of APKs against their published listing."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from provenance.errors import InputError, ProvenanceError
from provenance.inspect import inspect_apk
from provenance.metadata import Catalog, load_index, load_listing
from provenance.risk import (
    Assessment,
    Evaluator,
    Severity,
    load_history,
    load_policy,
    load_reports,
)
from provenance.risk.presentation import read_presentation

MAX_APKS = 1_000_000


def register(sub: Any) -> None:
    """Add the ``check`` command."""
    p = sub.add_parser(
        "check",
        help="check APKs against their published listing (counterfeit, repackaged, hot swap)",
        description="Inspect each APK and judge it against what the platform published: "
        "verdict clean, counterfeit, repackaged or hot_swapped, with findings and evidence. "
        "Exit 0 when every APK is clean, 1 when one is not, 2 on bad input.",
    )
    p.add_argument("apks", nargs="+", metavar="APK", help="APK file, or a folder of APKs")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--listing",
        metavar="FILE",
        action="append",
        help="published listing: apkprov listing JSON, AppVerifier list or F-Droid index "
        "(repeatable: the listings are merged)",
    )
    src.add_argument(
        "--index", metavar="FILE", help="F-Droid index-v2.json, index-v1.json or index-v1.jar"
    )
    p.add_argument(
        "--entry-jar", metavar="JAR", help="signed entry.jar vouching for --index index-v2.json"
    )
    p.add_argument(
        "--repo-fingerprint",
        metavar="HEX",
        help="pinned SHA-256 of the repository signing certificate",
    )
    p.add_argument("--channel", help="distribution channel whose signers are allowed (e.g. fdroid)")
    p.add_argument("--history", metavar="DIR", help="facts JSON files and/or APKs shelved before")
    p.add_argument(
        "--report",
        metavar="FILE",
        action="append",
        default=[],
        help="terminal report(s) of code loaded at run time (file or folder; repeatable)",
    )
    p.add_argument(
        "--policy", metavar="FILE", help="risk policy TOML (default: policies/default.toml)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per APK per line")
    p.add_argument("-v", "--verbose", action="store_true", help="also list findings of clean APKs")
    p.set_defaults(func=run)


def _apks(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(x for x in p.rglob("*") if x.suffix.lower() == ".apk" and x.is_file())
            if not found:
                raise InputError(f"{p}: no .apk files in this folder")
            out.extend(found)
        else:
            out.append(p)
        if len(out) > MAX_APKS:
            raise InputError(f"more than {MAX_APKS} APKs")
    return out


def _catalog(args: argparse.Namespace) -> Catalog:
    if args.listing is not None:
        if args.entry_jar or args.repo_fingerprint:
            raise InputError("--entry-jar and --repo-fingerprint go with --index")
        catalogs = [load_listing(path) for path in args.listing]
        return functools.reduce(Catalog.merged, catalogs)
    return load_index(args.index, entry_jar=args.entry_jar, repo_fingerprint=args.repo_fingerprint)


def run(args: argparse.Namespace) -> int:
    """Check every APK; 0 all clean, 1 one is not, 2 bad input (other APKs still checked)."""
    evaluator = Evaluator(
        _catalog(args),
        policy=load_policy(args.policy),
        history=load_history(args.history) if args.history else (),
        reports=[r for path in args.report for r in load_reports(path)],
        channel=args.channel,
    )
    apks = _apks(args.apks)
    progress = _Progress(len(apks), sys.stderr) if len(apks) > 1 else None
    worst = 0
    for i, path in enumerate(apks):
        if progress is not None:
            progress.show(i, path.name)
        try:
            result = evaluator.evaluate(inspect_apk(path), presentation=read_presentation(path))
        except ProvenanceError as e:
            if progress is not None:
                progress.clear()
            msg = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
            if args.json:
                print(json.dumps({"file": str(path), "verdict": None, "input_error": str(e)}))
            print(f"apkprov: {msg}", file=sys.stderr)
            worst = max(worst, e.exit_code)
            continue
        if progress is not None:
            progress.clear()
        if args.json:
            out = result.to_json()
            out["file"] = str(path)
            print(json.dumps(out, separators=(",", ":")), flush=True)
        else:
            _print_text(result, str(path), args.verbose)
        if not result.clean:
            worst = max(worst, 1)
    if progress is not None:
        progress.clear()
    return worst


def _print_text(a: Assessment, path: str, verbose: bool) -> None:
    where = ""
    if a.match is not None:
        m = a.match
        release = f" release {m.release.version_code}" if m.release else ""
        where = f" [{m.listing.platform}{release}, matched by {m.how}]"
    label = a.verdict.value if a.clean else a.verdict.value.upper()
    print(f"{path}: {label} ({a.package} {a.version_code}){where}")
    if a.clean and not verbose:
        return
    for f in a.findings:
        if verbose or f.verdict is not None or f.severity.rank >= Severity.MEDIUM.rank:
            print(f"  [{f.severity.value}] {f.id}: {f.summary}")
            for e in f.evidence:
                detail = f" ({e.detail})" if e.detail else ""
                print(f"      {e.kind}: {e.value}{detail}")


class _Progress:
    """A one-line progress bar on stderr, shown only when stderr is a terminal."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty()

    def show(self, done: int, name: str) -> None:
        """Draw the bar for ``done`` of ``total`` items, naming the current one."""
        if not self.enabled:
            return
        filled = self.WIDTH * done // max(1, self.total)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {name[:40]:<40}")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar so that results print on a clean line."""
        if self.enabled:
            self.stream.write("\r" + " " * (self.WIDTH + 56) + "\r")
            self.stream.flush()
