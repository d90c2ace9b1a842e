"""``apkprov log serve``: the log's HTTP interface for a data folder (docs/witness.md).

Kept apart from :mod:`provenance.cli.log` so the HTTP stack (Starlette, uvicorn) is
imported only by this verb; ``provenance.cli.log.register`` adds it with
``log_serve.register(verbs)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from provenance.errors import InputError

TOKEN_ENV = "APKPROV_LOG_TOKEN"


def register(verbs: Any) -> None:
    """Add ``serve`` to the ``log`` group's sub-parsers."""
    p = verbs.add_parser(
        "serve",
        help="serve the log over HTTP: tlog-tiles reads and POST /add",
        description="Serve DATA/public as the log's tlog-tiles URL prefix (GET /checkpoint, "
        "/tile/...), and append entries with POST /add (body: one entry of at most "
        "65,535 bytes; answer: its index once durable). With --policy, every checkpoint "
        "is cosigned by the policy's witnesses before it is published.",
    )
    p.add_argument("--dir", required=True, metavar="DATA", help="the log's data folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument(
        "--postgres",
        metavar="DSN",
        help="the PostgreSQL state's DSN (default $APKPROV_LOG_POSTGRES)",
    )
    p.add_argument("--read-only", action="store_true", help="no POST /add; no key needed")
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"require 'Authorization: Bearer <token>' for POST /add (default ${TOKEN_ENV})",
    )
    p.add_argument("--policy", metavar="FILE", help="tlog-policy file: witnesses to cosign with")
    p.add_argument(
        "--require-quorum",
        action="store_true",
        help="publish no checkpoint without the policy's quorum (default: publish, warn)",
    )
    p.add_argument(
        "--witness-timeout", type=float, default=10.0, metavar="S", help="per checkpoint"
    )
    p.add_argument("--checkpoint-interval", type=float, default=1.0, metavar="S", help="default 1")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    p.set_defaults(func=run_serve)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the token file {args.token_file}: {e}") from None
        if not token:
            raise InputError(f"the token file {args.token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; on the way out, integrate what was appended."""
    import uvicorn

    from provenance.log.log import Log
    from provenance.log.policy import PolicyCosigner, load_policy
    from provenance.log.server import data_folder_app
    from provenance.log.witness import tile_proof_provider

    token = _token(args)
    policy = load_policy(args.policy) if args.policy else None
    log = Log.open(args.dir, postgres=args.postgres, checkpoint_interval=args.checkpoint_interval)
    try:
        if policy is not None and not args.read_only:
            if not policy.log_verifiers(log.origin):
                print(f"apkprov: warning: {args.policy} does not list this log", file=sys.stderr)
            log.sequencer.cosigner = PolicyCosigner(
                policy,
                tile_proof_provider(log.tiles),
                timeout=args.witness_timeout,
                require_quorum=args.require_quorum,
            )
        app = data_folder_app(log, token=token, writable=not args.read_only, close_log=True)
        mode = "read-only" if args.read_only else "read-write"
        print(
            f"apkprov: serving {log.origin} ({mode}) on http://{args.host}:{args.port}/",
            file=sys.stderr,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        log.close()  # already closed at shutdown, unless uvicorn never started
    return 0
