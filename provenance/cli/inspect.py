"""``apkprov inspect``: the facts of APKs (manifest, signers, code, SDKs, code loading).

``apkprov inspect APK`` prints a readable summary; ``--json`` prints the
:class:`~provenance.inspect.ApkFacts` of each APK as one JSON object per line (the
schema of ``docs/inspection.md``), folders are scanned for ``*.apk`` recursively,
with a progress bar on stderr when stderr is a terminal. Exit 0 when every APK was
inspected, 2 when one could not be read (one line on stderr per failure; the others
are still inspected).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from provenance.errors import ProvenanceError
from provenance.inspect import ApkFacts, inspect_apk

_LIST_FIELDS = ("classes", "method_refs")


def register(sub: Any) -> None:
    """Add the ``inspect`` command."""
    p = sub.add_parser(
        "inspect", help="facts of APKs: manifest, signers, code, SDKs, dynamic code loading"
    )
    p.add_argument("paths", nargs="+", metavar="APK|DIR", help="APK files or folders to scan")
    p.add_argument("--json", action="store_true", help="one JSON object per APK per line")
    p.add_argument(
        "--summary",
        action="store_true",
        help="leave out the per-DEX class and method-reference lists (JSON stays the schema)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip signature verification")
    p.set_defaults(func=run)


def _targets(paths: list[str]) -> Iterator[Path]:
    """Files as given; folders walked for ``*.apk`` (symbolic links to folders not followed)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [
                Path(root) / name
                for root, _dirs, files in os.walk(path)
                for name in files
                if name.endswith(".apk")
            ]
            yield from sorted(p for p in found if p.is_file())
        else:
            yield path


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.enabled = total > 1 and stream.isatty()
        self.start = time.monotonic()

    def update(self, done: int, name: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // self.total
        rate = done / max(time.monotonic() - self.start, 1e-9)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {rate:.1f}/s {name}"
        self.stream.write(line[:120].ljust(120))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()


def facts_json(facts: ApkFacts, *, summary: bool = False) -> dict[str, Any]:
    """The JSON object printed for one APK (``summary`` empties the long per-DEX lists)."""
    out = facts.to_json()
    if summary:
        for dex in out["dex"]:
            for key in _LIST_FIELDS:
                dex[key] = []
    return out


def run(args: argparse.Namespace) -> int:
    """Inspect every APK named or found; 0 if all could be read, else 2."""
    targets = list(_targets(args.paths))
    if not targets:
        print("apkprov: no APK found", file=sys.stderr)
        return 2
    progress = _Progress(len(targets), sys.stderr)
    worst = 0
    try:
        for i, path in enumerate(targets, 1):
            progress.update(i - 1, path.name)
            try:
                facts = inspect_apk(path, verify=not args.no_verify)
            except ProvenanceError as e:
                msg = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
                progress.close()
                print(f"apkprov: {msg}", file=sys.stderr)
                if args.json:
                    print(json.dumps({"file": str(path), "input_error": str(e)}), flush=True)
                worst = max(worst, e.exit_code)
                continue
            if args.json:
                obj = facts_json(facts, summary=args.summary)
                line = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
                print(line, flush=True)
            else:
                _print_text(facts, path, multiple=len(targets) > 1)
        progress.update(len(targets), "")
    finally:
        progress.close()
    return worst


def _print_text(f: ApkFacts, path: Path, multiple: bool) -> None:
    out: list[str] = []
    m = f.manifest
    if multiple:
        out.append(f"== {path}")
    out.append(f"File: {f.file.name} ({f.file.size} bytes) sha256 {f.file.sha256}")
    out.append(f"Package: {m.package} versionCode {m.version_code} versionName {m.version_name!r}")
    out.append(f"SDK: min {m.min_sdk} target {m.target_sdk} max {m.max_sdk}")
    s = f.signing
    if s.verified:
        out.append(f"Signature: verified ({', '.join(s.schemes)})")
        for sha, subject in zip(s.signer_sha256, s.signer_subjects, strict=False):
            out.append(f"  signer {sha} {subject}")
        if s.lineage_sha256:
            out.append(f"  lineage {' -> '.join(x[:16] for x in s.lineage_sha256)}")
    else:
        out.append(f"Signature: DOES NOT VERIFY ({', '.join(s.errors) or 'unsigned'})")
    app = m.application
    flags = [
        f"{name}={value}"
        for name, value in (
            ("debuggable", app.debuggable),
            ("allowBackup", app.allow_backup),
            ("usesCleartextTraffic", app.uses_cleartext_traffic),
            ("testOnly", app.test_only),
            ("extractNativeLibs", app.extract_native_libs),
            ("networkSecurityConfig", app.network_security_config),
        )
        if value is not None
    ]
    out.append(f"Application: {app.name or '-'} {' '.join(flags)}".rstrip())
    for p in m.uses_permissions:
        extra = f" maxSdkVersion={p.max_sdk_version}" if p.max_sdk_version is not None else ""
        tag = "uses-permission-sdk-23" if p.sdk23 else "uses-permission"
        out.append(f"  {tag}: {p.name}{extra}")
    for feat in m.uses_features:
        name = feat.name or f"glEsVersion=0x{feat.gl_es_version or 0:x}"
        out.append(f"  uses-feature: {name}{'' if feat.required else ' (not required)'}")
    kinds: dict[str, list[int]] = {}
    for c in m.components:
        counts = kinds.setdefault(c.kind, [0, 0])
        counts[0] += 1
        counts[1] += c.exported
    if kinds:
        parts = [f"{k} {n} ({e} exported)" for k, (n, e) in kinds.items()]
        out.append("Components: " + ", ".join(parts))
    for d in f.dex:
        if d.error:
            out.append(f"DEX {d.name}: ERROR {d.error}")
        else:
            out.append(
                f"DEX {d.name}: v{d.version:03d} {d.class_count} classes, "
                f"{d.method_ref_count} method references"
            )
    out.append(f"Classes: {f.class_count} fingerprint {f.class_fingerprint}")
    if f.native_libs:
        out.append(f"Native: {len(f.native_libs)} libraries for {', '.join(f.abis)}")
    for sdk in f.sdks:
        out.append(f"SDK: {sdk.name} [{sdk.source}] {', '.join(sdk.evidence[:3])}")
    for fw in f.code_loading.frameworks:
        store = " (store-mediated)" if fw.store_mediated else ""
        out.append(f"Hot-update framework: {fw.name}{store}: {', '.join(fw.evidence)}")
    for cs in f.code_loading.call_sites:
        owner = f" {cs.library}" if cs.library else ""
        out.append(f"Code loading [{cs.origin}{owner}, {cs.strength}]: {cs.api} from {cs.caller}")
    for sh in f.code_loading.strings:
        where = ", ".join(sh.callers[:3]) if sh.callers else "string pool only"
        out.append(f"Injection string {sh.string!r}: {where}")
    for issue in f.issues:
        out.append(f"Issue: {issue}")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
