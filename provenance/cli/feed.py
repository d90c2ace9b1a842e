"""``apkprov feed init|publish|roots|renew-root|rotate|status``: the TUF feed for terminals.

Thin over :mod:`provenance.feed`; the ceremony and the layout are in docs/terminal.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provenance.cli import show_help
from provenance.errors import InputError
from provenance.feed import Expiry, FeedRepository, TrustRoots, publish_index

_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    m = _DURATION.fullmatch(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90m, 6h or 365d")
    return int(m.group(1)) * _UNIT[m.group(2)]


def _roots_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--offline-keys",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder with the offline root and targets keys (outside the repository)",
    )
    p.add_argument("--log-vkey", required=True, help="the log's verifier key, or a file with it")
    p.add_argument(
        "--witness-policy",
        type=Path,
        metavar="FILE",
        help="tlog-policy the checkpoints must satisfy (default: the log alone, no witnesses)",
    )
    p.add_argument(
        "--registry-root",
        required=True,
        type=Path,
        action="append",
        metavar="KEY",
        help="actor registry root public key (PEM/DER/base64 SPKI; repeatable)",
    )
    p.add_argument(
        "--verdict-key",
        required=True,
        type=Path,
        metavar="KEY",
        help="public key the verdict service signs with",
    )


def register(sub: Any) -> None:
    """Add the ``feed`` command group."""
    p = sub.add_parser("feed", help="publish the offline risk feed for terminals (TUF)")
    verbs = p.add_subparsers(dest="feed_command", metavar="VERB")
    p.set_defaults(func=show_help(p))

    init = verbs.add_parser("init", help="create the repository: keys, root, trust roots")
    init.add_argument("--dir", required=True, type=Path, help="repository folder")
    _roots_args(init)
    init.add_argument(
        "--prefix-len", type=int, default=2, choices=(1, 2, 3), help="hex digits per shard"
    )
    defaults = Expiry()
    for role in ("root", "targets", "feed", "snapshot", "timestamp"):
        init.add_argument(
            f"--{role}-expiry",
            type=_duration,
            default=getattr(defaults, role),
            metavar="DURATION",
            help=f"validity of {role} metadata (default {getattr(defaults, role) // 3600} h)",
        )
    init.add_argument("--json", action="store_true", help="print the result as JSON")
    init.set_defaults(func=run_init)

    pub = verbs.add_parser("publish", help="build the shards from the log and sign them")
    pub.add_argument("--dir", required=True, type=Path, help="repository folder")
    src = pub.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--verdicts", type=Path, metavar="DB", help="verdict index (created/synced from --log)"
    )
    src.add_argument(
        "--refresh",
        action="store_true",
        help="re-sign the current feed only (keeps snapshot/timestamp from expiring)",
    )
    pub.add_argument("--log", type=Path, metavar="DATA", help="the log's data folder")
    pub.add_argument("--json", action="store_true", help="print the result as JSON")
    pub.set_defaults(func=run_publish)

    roots = verbs.add_parser("roots", help="publish new trust roots (offline targets key)")
    roots.add_argument("--dir", required=True, type=Path, help="repository folder")
    _roots_args(roots)
    roots.set_defaults(func=run_roots)

    renew = verbs.add_parser("renew-root", help="sign the next root version (offline root key)")
    renew.add_argument("--dir", required=True, type=Path, help="repository folder")
    renew.add_argument("--offline-keys", required=True, type=Path, metavar="DIR")
    renew.set_defaults(func=run_renew_root)

    rotate = verbs.add_parser(
        "rotate", help="replace an online key (feed, snapshot, timestamp) using the offline keys"
    )
    rotate.add_argument("--dir", required=True, type=Path, help="repository folder")
    rotate.add_argument("--offline-keys", required=True, type=Path, metavar="DIR")
    rotate.add_argument("--role", required=True, choices=("feed", "snapshot", "timestamp"))
    rotate.set_defaults(func=run_rotate)

    status = verbs.add_parser("status", help="versions and expiry of every role")
    status.add_argument("--dir", required=True, type=Path, help="repository folder")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=run_status)


def _trust_roots(args: argparse.Namespace) -> TrustRoots:
    return TrustRoots.build(
        args.log_vkey, list(args.registry_root), args.verdict_key, args.witness_policy
    )


def run_init(args: argparse.Namespace) -> int:
    expiry = Expiry(
        root=args.root_expiry,
        targets=args.targets_expiry,
        feed=args.feed_expiry,
        snapshot=args.snapshot_expiry,
        timestamp=args.timestamp_expiry,
    )
    repo = FeedRepository.init(
        args.dir, args.offline_keys, _trust_roots(args), expiry=expiry, prefix_len=args.prefix_len
    )
    out = {
        "dir": str(repo.directory),
        "serve": str(repo.public),
        "root": str(repo.public / "metadata" / "1.root.json"),
        "offline_keys": str(args.offline_keys),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"feed repository in {repo.directory}; serve {repo.public}")
        print(f"terminals trust {out['root']} (ship it with them)")
        print(
            f"move {args.offline_keys} (root and targets keys) off this machine now",
            file=sys.stderr,
        )
    return 0


def run_publish(args: argparse.Namespace) -> int:
    repo = FeedRepository(args.dir)
    if args.refresh:
        result = repo.publish(None)
    else:
        if args.log is None:
            raise InputError("--verdicts needs --log DATA (the log the index is built from)")
        from provenance.log.log import Log
        from provenance.verdicts import VerdictIndex

        with Log.open(args.log) as log, VerdictIndex.open(args.verdicts) as index:
            result = publish_index(repo, index, log)
    out = {
        "feed_version": result.feed_version,
        "snapshot_version": result.snapshot_version,
        "timestamp_version": result.timestamp_version,
        "targets": result.targets,
        "new_files": result.new_files,
        "timestamp_expires": result.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"published feed v{result.feed_version}: {result.targets} targets "
            f"({result.new_files} new); re-publish before {out['timestamp_expires']}"
        )
    return 0


def run_roots(args: argparse.Namespace) -> int:
    version = FeedRepository(args.dir).set_roots(args.offline_keys, _trust_roots(args))
    print(f"published trust roots in targets v{version}")
    return 0


def run_renew_root(args: argparse.Namespace) -> int:
    version = FeedRepository(args.dir).renew_root(args.offline_keys)
    print(f"signed root v{version}")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    keyid = FeedRepository(args.dir).rotate_key(args.offline_keys, args.role)
    print(f"new {args.role} key {keyid}; the old one is in keys/retired/")
    return 0


def run_status(args: argparse.Namespace) -> int:
    repo = FeedRepository(args.dir)
    now = datetime.now(UTC)
    roles = {}
    for role, md in repo.current().items():
        expires = md.signed.expires
        roles[role] = {
            "version": md.signed.version,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expired": expires <= now,
        }
    if args.json:
        print(json.dumps({"dir": str(repo.directory), "roles": roles}))
    else:
        for role, r in roles.items():
            flag = "  EXPIRED" if r["expired"] else ""
            print(f"{role:10} v{r['version']:<6} expires {r['expires']}{flag}")
    return 1 if any(r["expired"] for r in roles.values()) else 0
