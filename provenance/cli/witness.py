"""``apkprov witness init|add-log|serve``: run a tlog-witness (docs/witness.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from provenance.cli import show_help
from provenance.log.witness import (
    KEY_FILE,
    LOGS_FILE,
    add_log,
    init_witness,
    open_witness,
    witness_app,
)


def register(sub: Any) -> None:
    """Add the ``witness`` command group."""
    p = sub.add_parser("witness", help="run a transparency-log witness (c2sp.org/tlog-witness)")
    verbs = p.add_subparsers(dest="witness_command", metavar="VERB")
    p.set_defaults(func=show_help(p))

    init = verbs.add_parser("init", help="create a witness directory and key")
    init.add_argument("--dir", required=True, type=Path, help="witness directory")
    init.add_argument(
        "--name", required=True, help="cosigner key name, e.g. witness.example.org/w1"
    )
    init.add_argument("--json", action="store_true", help="print the result as JSON")
    init.set_defaults(func=run_init)

    add = verbs.add_parser("add-log", help="trust a log: its origin and verifier key(s)")
    add.add_argument("--dir", required=True, type=Path, help="witness directory")
    add.add_argument("--origin", required=True, help="the log's checkpoint origin line")
    add.add_argument(
        "--vkey",
        required=True,
        action="append",
        help="the log's verifier key (repeat for several keys)",
    )
    add.add_argument("--json", action="store_true", help="print the result as JSON")
    add.set_defaults(func=run_add_log)

    serve = verbs.add_parser("serve", help="serve POST /add-checkpoint over HTTP")
    serve.add_argument("--dir", required=True, type=Path, help="witness directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    serve.set_defaults(func=run_serve)


def run_init(args: argparse.Namespace) -> int:
    """Generate the cosignature/v1 key; print its vkey (give it to logs and policies)."""
    signer = init_witness(args.dir, args.name)
    if args.json:
        print(json.dumps({"name": signer.name, "vkey": signer.vkey, "dir": str(args.dir)}))
    else:
        print(signer.vkey)
        print(f"private key written to {args.dir / KEY_FILE}", file=sys.stderr)
    return 0


def run_add_log(args: argparse.Namespace) -> int:
    """Add the log to ``logs.json``; a running ``serve`` picks it up on the next request."""
    log = add_log(args.dir, args.origin, args.vkey)
    if args.json:
        print(json.dumps({"origin": log.origin, "vkeys": list(log.vkeys)}))
    else:
        print(f"log {log.origin} trusted with {len(log.vkeys)} key(s) in {args.dir / LOGS_FILE}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve the witness until interrupted."""
    import uvicorn

    witness = open_witness(args.dir)
    print(f"witness {witness.vkey} on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(witness_app(witness), host=args.host, port=args.port, log_level=args.log_level)
    return 0
