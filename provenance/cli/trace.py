"""``apkprov trace``: an app's verified life cycle from the log (docs/trace.md).

Fetches every statement about the app -- all versions, all platforms -- from the
service (``--url``) or a data folder (``--dir``), and verifies each one locally
before printing anything: the log's checkpoint signature (``--vkey``; and the witness
quorum with ``--policy``), the inclusion proof, the DSSE signatures and the signer's
role against the actor registry rebuilt from its root key (``--registry`` or
``--root-key``). Exit 0 when everything verifies, 1 listing what does not, 2 on
usage or input errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from provenance.errors import InputError, ProvenanceError

EXIT_OK = 0
EXIT_FAILED = 1


def register(sub: Any) -> None:
    """Add the ``trace`` command."""
    p = sub.add_parser(
        "trace",
        help="trace an app through the log and verify every statement locally",
        description="Trace PACKAGE (or the app of an APK file, or of an APK digest): "
        "registration, releases, shelving, inspections, takedowns and restores, per "
        "version. Everything is verified against --vkey and the registry root before "
        "it is printed.",
    )
    p.add_argument("package", nargs="?", metavar="PACKAGE", help="the app's package name")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--apk", metavar="FILE", help="an APK file: verified, then traced")
    what.add_argument("--sha256", metavar="HEX", help="an APK's SHA-256")
    what.add_argument("--cert", metavar="HEX", help="a signer certificate's SHA-256")
    add_source_args(p)
    add_trust_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_trace)


def add_source_args(p: argparse.ArgumentParser) -> None:
    """Where the log is read from: ``--url`` or ``--dir`` (+ ``--postgres``)."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", metavar="URL", help="the log service's base URL")
    where.add_argument("--dir", metavar="DATA", help="a log's data folder, read directly")
    p.add_argument("--postgres", metavar="DSN", help="with --dir: the PostgreSQL DSN")


def add_trust_args(p: argparse.ArgumentParser) -> None:
    """What a verifying client trusts: the log key, the registry root, the policies.

    Shared by every command that verifies a chain (``trace``, ``takedown``), so they
    are configured the same way.
    """
    p.add_argument(
        "--vkey", required=True, metavar="VKEY", help="the log's verifier key, or a file with it"
    )
    p.add_argument("--registry", metavar="FILE", help="registry-root JSON (docs/trace.md)")
    p.add_argument(
        "--root-key",
        action="append",
        default=[],
        metavar="FILE",
        help="the actor registry's root public key (PEM, DER or note vkey); repeatable",
    )
    p.add_argument("--policy", metavar="FILE", help="tlog-policy: require the witness quorum")
    p.add_argument(
        "--role-policy", metavar="FILE", help="role policy (default policies/roles.toml)"
    )


def _load_vkey(value: str) -> str:
    """A vkey given inline, or the first non-empty line of a file holding one."""
    path = Path(value)
    if "+" in value and not path.exists():
        return value.strip()
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--vkey: not a key and not a readable file: {e}") from None
    return next((line.strip() for line in lines if line.strip()), "")


def _apk_facts(path: str) -> tuple[str, str | None, list[str], list[str]]:
    """SHA-256, package, signer certificate digests and verification errors of an APK."""
    from provenance.apk.manifest import parse_manifest
    from provenance.apk.verify import read_manifest, verify_apk
    from provenance.apk.zip import ApkFile

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    result = verify_apk(path)
    errors = [str(e) for e in result.all_errors()] if not result.verified else []
    with ApkFile(path) as apk:
        package = parse_manifest(read_manifest(apk)).package
    return h.hexdigest(), package, [c.sha256 for c in result.signer_certs], errors


def _packages_of(answer: dict[str, Any]) -> set[str]:
    """Package names the (unverified) statements of an answer mention."""
    from provenance.statements import Envelope, Statement
    from provenance.trace.extract import statement_keys

    out: set[str] = set()
    for item in answer.get("entries") or []:
        try:
            env = Envelope.from_dict(item["envelope"])
            keys = statement_keys(Statement.from_json(env.payload))
        except (ProvenanceError, KeyError, TypeError):
            continue
        out.update(v for k, v in keys if k == "package")
    return out


def run_trace(args: argparse.Namespace) -> int:
    from provenance.log.note import parse_verifier_key
    from provenance.log.policy import load_policy
    from provenance.statements import RolePolicy
    from provenance.trace.chain import build_chains, chains_json, render_text
    from provenance.trace.sources import HttpTraceSource, TraceSource
    from provenance.trace.trust import load_root_keys
    from provenance.trace.verify import TraceVerifier, Trust

    chosen = [x for x in (args.package, args.apk, args.sha256, args.cert) if x]
    if len(chosen) != 1:
        raise InputError("give exactly one of PACKAGE, --apk, --sha256 and --cert")
    trust = Trust(
        log_verifier=parse_verifier_key(_load_vkey(args.vkey)),
        root_keys=load_root_keys(args.registry, args.root_key),
        witness_policy=load_policy(args.policy) if args.policy else None,
        role_policy=RolePolicy.load(args.role_policy) if args.role_policy else None,
    )
    local_problems: list[str] = []
    highlight: str | None = None
    apk_certs: list[str] | None = None

    source: TraceSource
    cleanup: list[Any] = []
    if args.url:
        source = HttpTraceSource(args.url)
    else:
        source = _local_source(args.dir, args.postgres, cleanup)
    try:
        queries: list[tuple[str, str]] = []
        if args.package:
            queries = [("package", args.package)]
        elif args.cert:
            queries = [("cert", args.cert.lower())]
        else:
            if args.apk:
                highlight, package, apk_certs, errors = _apk_facts(args.apk)
                local_problems += [f"{args.apk} does not verify: {e}" for e in errors[:5]]
                packages = {package} if package else set()
            else:
                highlight = args.sha256.lower()
                packages = set()
            queries = [("sha256", highlight)]
            packages |= _packages_of(source.trace("sha256", highlight, -1))
            queries += [("package", p) for p in sorted(packages)]
        result = TraceVerifier(source, trust).run(queries)
    finally:
        source.close()
        for close in cleanup:
            close()
    result.problems[:0] = local_problems
    if highlight is not None and apk_certs is not None:
        for s in result.statements:
            if (
                s.step == "release"
                and s.predicate["apk"]["sha256"] == highlight
                and sorted(s.predicate["signer_certificates"]) != sorted(apk_certs)
            ):
                result.problems.append(
                    f"entry {s.index}: the release names other signer certificates "
                    "than the APK file carries"
                )
    if highlight is not None and not any(
        s.step == "release" and s.predicate["apk"]["sha256"] == highlight for s in result.statements
    ):
        result.warnings.append(f"no verified release of the APK {highlight}")
    chains = build_chains(result)
    if args.json:
        print(json.dumps({**result.to_json(), "apps": chains_json(chains)}, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(result, chains, highlight))
    return EXIT_OK if result.ok else EXIT_FAILED


def _local_source(directory: str, postgres: str | None, cleanup: list[Any]) -> Any:
    """A data folder's log and index, with the index caught up from the log first."""
    from provenance.log.log import Log
    from provenance.service.runtime import open_service_db
    from provenance.trace.index import TraceIndex
    from provenance.trace.indexer import Indexer
    from provenance.trace.sources import LocalTraceSource

    db = open_service_db(directory, postgres)
    cleanup.append(db.close)
    log = Log.open(directory, postgres=postgres)
    cleanup.insert(0, lambda: log.close(integrate=False))
    index = TraceIndex(db, log.origin)
    with db.exclusive("submit"):
        Indexer(log, index).catch_up()
    return LocalTraceSource(log, index)
