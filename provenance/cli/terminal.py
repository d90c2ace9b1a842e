"""``apkprov terminal check APK``: the terminal's warning, from the verified offline feed.

Exit codes: 0 trusted, or unknown (with a note); 1 a warning verdict (counterfeit,
repackaged, hot_swapped, taken_down) or a feed that failed its checks (rollback,
freeze, tampering); 2 bad input, or no usable feed (no network and nothing cached).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from provenance.cli import show_help
from provenance.feed import FeedClient


def register(sub: Any) -> None:
    """Add the ``terminal`` command group."""
    p = sub.add_parser("terminal", help="check APKs on a terminal against the offline feed")
    verbs = p.add_subparsers(dest="terminal_command", metavar="VERB")
    p.set_defaults(func=show_help(p))

    check = verbs.add_parser(
        "check",
        help="refresh the feed (TUF), verify it and print the warning for an APK",
        description="Exit 0 trusted or unknown, 1 warning (or a feed that failed its "
        "checks), 2 bad input or no usable feed.",
    )
    check.add_argument("apk", type=Path, metavar="APK", help="the APK file")
    check.add_argument("--feed-url", help="feed base URL (remembered in the cache)")
    check.add_argument(
        "--cache", type=Path, metavar="DIR", help="feed cache (default ~/.cache/apkprov/feed)"
    )
    check.add_argument(
        "--offline",
        action="store_true",
        help="no network: use only the cached, still unexpired feed",
    )
    check.add_argument(
        "--root",
        type=Path,
        metavar="ROOT_JSON",
        help="the feed's trusted root metadata, for the first use of a cache",
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    client = FeedClient(args.cache, args.feed_url, offline=args.offline, root=args.root)
    result = client.check(args.apk)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(result.render())
    return result.exit_code
