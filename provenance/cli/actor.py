"""``apkprov actor``: submission tokens for actors (docs/service.md).

Verbs: ``add-token ACTOR`` (prints a new bearer token once; only its hash is
stored), ``list`` (tokens, never their secrets), ``revoke-token ID``. They work on the
service database of a log's data folder, with the service running or not.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from provenance.cli import show_help

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(sub: Any) -> None:
    """Add the ``actor`` command group."""
    p = sub.add_parser(
        "actor",
        help="manage actors' submission tokens for the log service",
        description="Bearer tokens for POST /v1/statements: one actor per token, printed "
        "once, stored as SHA-256. Actors themselves enter the registry through signed "
        "actor-registration statements, not here.",
    )
    p.set_defaults(func=show_help(p))
    verbs = p.add_subparsers(dest="actor_command", metavar="VERB")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dir", required=True, metavar="DATA", help="the log's data folder")
        q.add_argument("--postgres", metavar="DSN", help="PostgreSQL DSN, if the log uses it")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    q = verbs.add_parser("add-token", help="issue a token for ACTOR (printed once)")
    q.add_argument("actor", metavar="ACTOR", help="actor id, e.g. acme or registry-root")
    q.add_argument("--label", default="", help="a note to recognise the token by")
    common(q)
    q.set_defaults(func=run_add_token)

    q = verbs.add_parser("list", help="list tokens (ids, actors, labels; never secrets)")
    common(q)
    q.set_defaults(func=run_list)

    q = verbs.add_parser("revoke-token", help="revoke a token by its id")
    q.add_argument("token_id", metavar="ID", help="the token id from `actor list`")
    common(q)
    q.set_defaults(func=run_revoke)


def _store(args: argparse.Namespace) -> Any:
    from provenance.service.runtime import open_service_db
    from provenance.service.tokens import TokenStore

    return TokenStore(open_service_db(args.dir, args.postgres))


def run_add_token(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        token, info = store.issue(args.actor, args.label)
    finally:
        store.db.close()
    if args.json:
        print(json.dumps({**info.to_json(), "token": token}))
    else:
        print(token)
        print(
            f"apkprov: token {info.token_id} for {info.actor}; it is shown only now",
            file=sys.stderr,
        )
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        tokens = store.list()
    finally:
        store.db.close()
    if args.json:
        print(json.dumps([t.to_json() for t in tokens]))
        return EXIT_OK
    for t in tokens:
        state = "active" if t.active else f"revoked {t.revoked_at}"
        label = f"  {t.label}" if t.label else ""
        print(f"{t.token_id}  {t.actor:<24} {t.created_at}  {state}{label}")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        done = store.revoke(args.token_id)
    finally:
        store.db.close()
    if args.json:
        print(json.dumps({"token_id": args.token_id, "revoked": done}))
    elif done:
        print(f"revoked {args.token_id}")
    else:
        print(f"apkprov: no active token {args.token_id}", file=sys.stderr)
    return EXIT_OK if done else EXIT_FAILED
