"""``apkprov takedown``: prepare, issue and restore takedowns on verified evidence.

Verbs (docs/access-provider.md):

* ``prepare PACKAGE | --sha256 HEX`` -- gather the app's chain through the
  verifying trace client and print the checklist (registration, release, shelving,
  inspections: verified, unverified or missing); ``--out FILE`` writes the evidence
  bundle. Exit 0 if the chain is complete and verified, 1 otherwise.
* ``verify-evidence FILE`` -- verify a bundle offline against the given log key and
  registry root; same checklist and exit codes.
* ``issue`` / ``restore`` -- verify the chain, build a takedown (or restore) citing
  verified entries, sign it with ``--key`` and submit it with ``--token``; prints
  the log index.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.cli import show_help
from provenance.cli.trace import add_source_args, add_trust_args
from provenance.errors import CheckFailed, InputError

if TYPE_CHECKING:
    from provenance.takedown import Prepared
    from provenance.trace.sources import TraceSource
    from provenance.trace.verify import Trust

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_TAKEDOWN_REASONS = (
    "malware",
    "privacy",
    "unfiled",
    "fraud",
    "illegal_content",
    "security",
    "policy",
    "other",
)
_RESTORE_REASONS = ("resolved", "appeal_granted", "error", "other")


def register(sub: Any) -> None:
    """Add the ``takedown`` command group."""
    p = sub.add_parser(
        "takedown",
        help="prepare, issue and restore takedowns on verified evidence",
        description="Takedowns for access providers, regulators and platforms: check that "
        "an app's chain (registration, release, shelving, inspections) is complete and "
        "verifies, keep it as an offline-verifiable evidence bundle, and sign and submit "
        "takedowns and restores that cite it.",
    )
    p.set_defaults(func=show_help(p))
    verbs = p.add_subparsers(dest="takedown_command", metavar="VERB")

    q = verbs.add_parser(
        "prepare",
        help="gather and verify an app's chain; print the checklist",
        description="Trace PACKAGE (or the APK with --sha256) through the verifying trace "
        "client and say which steps of its chain are present and verified. Exit 0 when "
        "the chain is complete and verified, 1 otherwise.",
    )
    _subject_args(q)
    add_source_args(q)
    add_trust_args(q)
    q.add_argument("--out", metavar="FILE", help="write the evidence bundle to FILE")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_prepare)

    q = verbs.add_parser(
        "verify-evidence",
        help="verify an evidence bundle offline",
        description="Verify an evidence bundle written by `takedown prepare --out` without "
        "any network access, trusting only --vkey and the registry root given here.",
    )
    q.add_argument("bundle", metavar="FILE", help="the evidence bundle")
    add_trust_args(q)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_verify_evidence)

    q = verbs.add_parser(
        "issue",
        help="sign and submit a takedown citing verified evidence",
        description="Verify the chain, then sign a takedown of the app, one version or an "
        "SDK with --key and submit it to the service with --token. Evidence defaults to "
        "the verified inspection(s) of what is taken down. Prints the log index.",
    )
    _subject_args(q)
    q.add_argument("--scope", required=True, choices=("app", "version", "sdk"))
    q.add_argument("--sdk-version", metavar="V", help="with --scope sdk: one SDK version")
    q.add_argument("--reason", required=True, choices=_TAKEDOWN_REASONS, help="reason code")
    _action_args(q)
    q.set_defaults(func=run_issue)

    q = verbs.add_parser(
        "restore",
        help="sign and submit a restore lifting a standing takedown",
        description="Verify the chain, then sign a restore of a standing takedown (the only "
        "one, or --takedown INDEX) with --key and submit it with --token. Evidence defaults "
        "to verified inspections logged after the takedown. Prints the log index.",
    )
    _subject_args(q)
    q.add_argument("--takedown", type=int, metavar="INDEX", help="the takedown to lift")
    q.add_argument("--reason", required=True, choices=_RESTORE_REASONS, help="reason code")
    _action_args(q)
    q.set_defaults(func=run_restore)


def _subject_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("package", nargs="?", metavar="PACKAGE", help="the app's package name")
    q.add_argument("--sha256", metavar="HEX", help="the APK's SHA-256 instead of a package")
    q.add_argument("--sdk", metavar="ID", help="also trace this SDK (group:artifact)")


def _action_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--text", metavar="TEXT", help="reason text (default: from the evidence)")
    q.add_argument("--legal-basis", metavar="TEXT", help="the legal basis, if any")
    q.add_argument(
        "--evidence",
        type=int,
        nargs="+",
        default=[],
        metavar="INDEX",
        help="log indices of verified entries to cite (default: the inspections)",
    )
    q.add_argument("--effective-at", metavar="TIME", help="UTC time, e.g. 2026-03-01T00:00:00Z")
    q.add_argument("--key", required=True, metavar="SIGNER_URI", help="file:PATH, pkcs11:...")
    q.add_argument(
        "--token",
        required=True,
        metavar="TOKEN_SPEC",
        help="the actor's service token: env:NAME, file:PATH, stdin or pass:TOKEN",
    )
    q.add_argument("--url", required=True, metavar="URL", help="the log service's base URL")
    add_trust_args(q)
    q.add_argument("--dry-run", action="store_true", help="print the signed statement only")
    q.add_argument("--json", action="store_true", help="machine-readable output")


# ----------------------------------------------------------------- helpers


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


def _trust(args: argparse.Namespace) -> Trust:
    from provenance.log.note import parse_verifier_key
    from provenance.log.policy import load_policy
    from provenance.statements import RolePolicy
    from provenance.trace.trust import load_root_keys
    from provenance.trace.verify import Trust

    return Trust(
        log_verifier=parse_verifier_key(_load_vkey(args.vkey)),
        root_keys=load_root_keys(args.registry, args.root_key),
        witness_policy=load_policy(args.policy) if args.policy else None,
        role_policy=RolePolicy.load(args.role_policy) if args.role_policy else None,
    )


def _subject(args: argparse.Namespace) -> Any:
    from provenance.takedown import Subject

    return Subject(package=args.package, sha256=args.sha256, sdk=args.sdk)


def _open_source(args: argparse.Namespace, cleanup: list[Callable[[], None]]) -> TraceSource:
    from provenance.trace.sources import HttpTraceSource

    if getattr(args, "dir", None) is None:
        source = HttpTraceSource(args.url)
        cleanup.append(source.close)
        return source
    from provenance.log.log import Log
    from provenance.service.runtime import open_service_db
    from provenance.trace.index import TraceIndex
    from provenance.trace.indexer import Indexer
    from provenance.trace.sources import LocalTraceSource

    db = open_service_db(args.dir, args.postgres)
    cleanup.append(db.close)
    log = Log.open(args.dir, postgres=args.postgres)
    cleanup.insert(0, lambda: log.close(integrate=False))
    index = TraceIndex(db, log.origin)
    with db.exclusive("submit"):
        Indexer(log, index).catch_up()
    return LocalTraceSource(log, index)


def _prepare(args: argparse.Namespace) -> Prepared:
    from provenance.takedown import prepare

    subject = _subject(args)
    trust = _trust(args)
    cleanup: list[Callable[[], None]] = []
    try:
        return prepare(_open_source(args, cleanup), trust, subject)
    finally:
        for close in cleanup:
            close()


_MARK = {"verified": "[x]", "unverified": "[!]", "missing": "[ ]"}


def render_checklist(prepared: Prepared) -> str:
    """The checklist for people: verdict, anchors, steps, standing, checks, problems."""
    from provenance.takedown import checks_of

    c = prepared.checklist
    if not c.verified:
        verdict = "NOT VERIFIED"
    elif not c.complete:
        verdict = "INCOMPLETE"
    else:
        verdict = "COMPLETE AND VERIFIED"
    lines = [f"{verdict}: chain of {c.subject.describe()}"]
    if c.targets.packages:
        lines.append(f"  packages: {', '.join(sorted(c.targets.packages))}")
    lines.append("steps:")
    width = max(len(s.title) for s in c.steps)
    for s in c.steps:
        status = s.status if s.status == "verified" else s.status.upper()
        lines.append(f"  {_MARK[s.status]} {s.title:<{width}}  {status:<10}  {s.text}")
    if c.takedowns:
        lines.append("standing: TAKEN DOWN")
        for t in c.takedowns:
            p = t.predicate
            lines.append(
                f"  #{t.index} {p['scope']['kind']} takedown by {t.signer}: "
                f"{p['reason']['code']}, effective {p['effective_at']}"
            )
    else:
        lines.append("standing: available (no verified takedown stands)")
    lines.append("checked:")
    for check in checks_of(prepared.result, prepared.trust):
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.title}: {check.text}")
    if c.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {w}" for w in c.warnings)
    if c.problems:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in c.problems)
    return "\n".join(lines) + "\n"


def _report_json(prepared: Prepared) -> dict[str, Any]:
    from provenance.takedown import checks_of, trust_json
    from provenance.trace.chain import chains_json

    return {
        **prepared.checklist.to_json(),
        "trust": trust_json(prepared.trust),
        "checks": [c.to_json() for c in checks_of(prepared.result, prepared.trust)],
        "apps": chains_json(prepared.chains),
    }


# -------------------------------------------------------------------- verbs


def run_prepare(args: argparse.Namespace) -> int:
    from provenance.takedown import bundle_document, write_bundle

    prepared = _prepare(args)
    written = None
    if args.out:
        vkey = _load_vkey(args.vkey)
        written = write_bundle(args.out, bundle_document(prepared, vkey))
    if args.json:
        doc = _report_json(prepared)
        doc["bundle"] = {"path": args.out, "bytes": written} if args.out else None
        print(json.dumps(doc, ensure_ascii=False))
    else:
        sys.stdout.write(render_checklist(prepared))
        if args.out:
            print(f"evidence bundle: {args.out} ({written} bytes)")
    return EXIT_OK if prepared.ok else EXIT_FAILED


def run_verify_evidence(args: argparse.Namespace) -> int:
    from provenance.takedown import read_bundle, verify_bundle

    bundle = read_bundle(args.bundle)
    prepared = verify_bundle(bundle, _trust(args))
    if args.json:
        doc = _report_json(prepared)
        doc["created_at"] = bundle.created_at
        print(json.dumps(doc, ensure_ascii=False))
    else:
        sys.stdout.write(render_checklist(prepared))
        if bundle.created_at:
            print(f"bundle created at {bundle.created_at}")
    return EXIT_OK if prepared.ok else EXIT_FAILED


def _effective_at(args: argparse.Namespace) -> datetime | None:
    from provenance.statements.schema import parse_time

    return parse_time(args.effective_at, "--effective-at") if args.effective_at else None


def _act(args: argparse.Namespace, build: Callable[[Prepared, Any, datetime], Any]) -> int:
    """Common flow of issue and restore: token, signer, verified chain, build, send."""
    from provenance.statements import open_signer
    from provenance.takedown import submit_statement
    from provenance.takedown.submit import read_token

    token = None if args.dry_run else read_token(args.token)
    signer = open_signer(args.key)
    try:
        prepared = _prepare(args)
        if not prepared.checklist.verified:
            sys.stderr.write(render_checklist(prepared))
            raise CheckFailed("the chain does not verify; nothing was signed or sent")
        if not prepared.checklist.complete:
            missing = [s.title.lower() for s in prepared.checklist.steps if s.status != "verified"]
            print(f"apkprov: warning: the chain lacks {', '.join(missing)}", file=sys.stderr)
        ptype, predicate, evidence, body = build(prepared, signer, datetime.now(UTC))
    finally:
        close = getattr(signer, "close", None)
        if close is not None:
            close()
    step = ptype.rsplit("/", 2)[-2]
    if args.dry_run:
        print(body.decode("utf-8"))
        return EXIT_OK
    assert token is not None
    receipt = submit_statement(args.url, token, body)
    if args.json:
        out = {
            **receipt.to_json(),
            "predicate": predicate,
            "evidence": [s.index for s in evidence],
        }
        print(json.dumps(out, ensure_ascii=False))
        return EXIT_OK
    scope = predicate["scope"]
    if scope["kind"] == "version":
        what = f"{scope['package']}, APK {scope['apk_sha256']}"
    elif scope["kind"] == "app":
        what = scope["package"]
    else:
        what = scope["sdk_id"] + (f" {scope['sdk_version']}" if "sdk_version" in scope else "")
    print(f"{step} submitted: log entry {receipt.index}")
    print(f"  leaf hash  {receipt.leaf_hash}")
    print(f"  authority  {predicate['authority']}")
    print(f"  scope      {scope['kind']} {what}")
    print(f"  reason     {predicate['reason']['code']}: {predicate['reason']['text']}")
    cited = ", ".join(f"#{s.index} ({s.step} by {s.signer})" for s in evidence) or "none"
    print(f"  evidence   {cited}")
    return EXIT_OK


def run_issue(args: argparse.Namespace) -> int:
    from provenance.statements import TAKEDOWN
    from provenance.takedown import (
        authority_for,
        build_takedown,
        choose_evidence,
        resolve_scope,
        sign,
        standing_takedowns,
    )

    def build(prepared: Prepared, signer: Any, now: datetime) -> Any:
        authority = authority_for(prepared, signer, TAKEDOWN, now)
        scope = resolve_scope(prepared, args.scope, sdk_id=args.sdk, sdk_version=args.sdk_version)
        mine = [s for s in standing_takedowns(prepared, scope) if s.signer == authority]
        if mine:
            raise CheckFailed(
                f"{authority} already took this down (log entry {mine[0].index}); "
                "nothing was signed or sent"
            )
        evidence = choose_evidence(prepared, scope, args.evidence)
        predicate = build_takedown(
            authority,
            scope,
            args.reason,
            evidence,
            text=args.text,
            legal_basis=args.legal_basis,
            effective_at=_effective_at(args),
        )
        return TAKEDOWN, predicate, evidence, sign(TAKEDOWN, predicate, signer)

    return _act(args, build)


def run_restore(args: argparse.Namespace) -> int:
    from provenance.statements import RESTORE
    from provenance.takedown import (
        authority_for,
        build_restore,
        choose_evidence,
        restorable,
        sign,
    )

    def build(prepared: Prepared, signer: Any, now: datetime) -> Any:
        authority = authority_for(prepared, signer, RESTORE, now)
        takedown = restorable(prepared, args.takedown)
        if takedown.signer != authority:
            print(
                f"apkprov: warning: lifting a takedown by {takedown.signer} as {authority}",
                file=sys.stderr,
            )
        scope = takedown.predicate["scope"]
        evidence = choose_evidence(
            prepared, scope, args.evidence, after=takedown.index, required=False
        )
        predicate = build_restore(
            authority,
            takedown,
            args.reason,
            evidence,
            text=args.text,
            legal_basis=args.legal_basis,
            effective_at=_effective_at(args),
        )
        return RESTORE, predicate, evidence, sign(RESTORE, predicate, signer)

    return _act(args, build)
