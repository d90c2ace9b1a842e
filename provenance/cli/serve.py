"""``apkprov serve``: the HTTP service over a log's data folder (docs/service.md).

Thin over :class:`provenance.service.Service` and :func:`provenance.service.service_app`;
the HTTP stack (Starlette, uvicorn) is imported only when this verb runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from provenance.errors import InputError


def register(sub: Any) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser(
        "serve",
        help="run the log service: submit statements, trace apps with proofs",
        description="Serve the log in DATA over HTTP: POST /v1/statements (bearer token per "
        "actor, see `apkprov actor add-token`), GET /v1/trace, /v1/actors, /v1/entries/N, "
        "the C2SP read path (/checkpoint, /tile/...) and /openapi.json. The log must exist "
        "(`apkprov log init`); the trace index is kept next to the log's state and caught "
        "up from the log at start.",
    )
    p.add_argument("--dir", required=True, metavar="DATA", help="the log's data folder")
    p.add_argument(
        "--postgres", metavar="DSN", help="PostgreSQL DSN (default $APKPROV_LOG_POSTGRES)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--registry", metavar="FILE", help="registry-root JSON (docs/trace.md)")
    p.add_argument(
        "--root-key",
        action="append",
        default=[],
        metavar="FILE",
        help="a registry root public key (PEM, DER or note vkey); repeatable",
    )
    p.add_argument(
        "--role-policy", metavar="FILE", help="role policy (default policies/roles.toml)"
    )
    p.add_argument("--max-body", type=int, default=64 * 1024, metavar="BYTES", help="default 65536")
    p.add_argument(
        "--rate", type=float, default=2.0, metavar="N", help="submissions/s per token (default 2)"
    )
    p.add_argument(
        "--burst", type=int, default=20, metavar="N", help="burst per token (default 20)"
    )
    p.add_argument("--checkpoint-interval", type=float, default=1.0, metavar="S", help="default 1")
    p.add_argument("--policy", metavar="FILE", help="tlog-policy: witnesses to cosign with")
    p.add_argument(
        "--reindex", action="store_true", help="rebuild the trace index from the log at start"
    )
    p.add_argument(
        "--verdict-key",
        metavar="URI",
        help="serve signed verdicts for terminals (GET /v1/verdict) signed with this key "
        "(file:… or pkcs11:…; docs/terminal.md)",
    )
    p.add_argument(
        "--verdict-sync",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between verdict-index updates from the log (default 2)",
    )
    p.add_argument(
        "--sigstore-trusted-root",
        metavar="FILE",
        help="Sigstore trusted_root.json: verify build-provenance bundles of releases offline",
    )
    p.add_argument(
        "--build-identity",
        action="append",
        default=[],
        metavar="ISSUER=IDENTITY",
        help="an accepted build signer (OIDC issuer and certificate SAN); repeatable",
    )
    p.add_argument(
        "--require-build-provenance",
        action="store_true",
        help="refuse releases that carry no Sigstore bundle",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; on the way out, integrate what was appended."""
    import uvicorn

    from provenance.service import Service, ServiceSettings, service_app
    from provenance.statements import RolePolicy
    from provenance.trace.trust import load_root_keys

    if not 1 <= args.max_body <= 65535 + 1:
        raise InputError("--max-body must be in 1..65536 (a log entry is at most 65,535 bytes)")
    if args.rate <= 0 or args.burst < 1:
        raise InputError("--rate must be positive and --burst at least 1")
    root_keys = load_root_keys(args.registry, args.root_key)
    settings = ServiceSettings(
        sigstore=_sigstore_policy(args),
        max_body=args.max_body,
        rate=args.rate,
        burst=args.burst,
        role_policy=RolePolicy.load(args.role_policy) if args.role_policy else None,
        log_options={"checkpoint_interval": args.checkpoint_interval},
    )
    service = Service(
        args.dir, root_keys, postgres=args.postgres, settings=settings, reindex=args.reindex
    )
    try:
        if args.policy:
            from provenance.log.policy import PolicyCosigner, load_policy
            from provenance.log.witness import tile_proof_provider

            policy = load_policy(args.policy)
            service.log.sequencer.cosigner = PolicyCosigner(
                policy, tile_proof_provider(service.log.tiles)
            )
        app = service_app(service, extra_routes=_verdict_routes(args, service))
        print(
            f"apkprov: serving {service.log.origin} on http://{args.host}:{args.port}/ "
            f"({service.index.count()} statements, {len(service.submitter.registry)} actors)",
            file=sys.stderr,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        service.close()  # already closed at shutdown, unless uvicorn never started
    return 0


def _sigstore_policy(args: argparse.Namespace) -> Any:
    """The build-provenance policy from the command line, or None when not configured."""
    if not args.sigstore_trusted_root:
        if args.build_identity or args.require_build_provenance:
            raise InputError(
                "--build-identity and --require-build-provenance need --sigstore-trusted-root"
            )
        return None
    from provenance.statements import SigstorePolicy
    from provenance.statements.sigstore import BuildIdentity

    identities = []
    for spec in args.build_identity:
        issuer, sep, identity = spec.partition("=")
        if not sep or not issuer or not identity:
            raise InputError(f"--build-identity wants ISSUER=IDENTITY, got {spec!r}")
        identities.append(BuildIdentity(issuer, identity))
    if not identities:
        raise InputError("give at least one --build-identity with --sigstore-trusted-root")
    return SigstorePolicy(
        trusted_root=args.sigstore_trusted_root,
        identities=tuple(identities),
        require=args.require_build_provenance,
    )


def _verdict_routes(args: argparse.Namespace, service: Any) -> list[Any]:
    """The terminal verdict API over DATA/verdicts.db, kept in step with the log.

    The index is rebuilt from log statements (releases, inspections, takedowns) by a
    background thread every ``--verdict-sync`` seconds, so a takedown accepted by
    this service reaches terminals' online lookups within that delay.
    """
    if not args.verdict_key:
        return []
    import threading
    import time
    from pathlib import Path

    from starlette.routing import Route

    from provenance.statements import open_signer
    from provenance.verdicts import VerdictIndex, verdict_app

    if args.verdict_sync <= 0:
        raise InputError("--verdict-sync must be positive")
    index = VerdictIndex.open(Path(args.dir) / "verdicts.db")
    index.sync(service.log)
    app = verdict_app(index, open_signer(args.verdict_key))

    def follow() -> None:
        while True:
            time.sleep(args.verdict_sync)
            try:
                index.sync(service.log)
            except Exception as e:  # keep serving the last good state; say why
                print(f"apkprov: verdict index not updated: {e}", file=sys.stderr)

    threading.Thread(target=follow, name="verdict-sync", daemon=True).start()
    return [Route("/v1/verdict", app), Route("/v1/verdict-key", app)]
