"""``python -m provenance.demo [--dir DIR]``: play the whole story, print it.

Exit codes: 0 every step behaved as expected, 1 something did not, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance.errors import ProvenanceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provenance.demo",
        description="Set up and run the whole apk-provenance story on 127.0.0.1: registry, "
        "developer, platform review, witnesses, offline terminal feed, takedown.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="data folder, new or empty (default: a new folder under the temp directory)",
    )
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # checkpoints carry an em dash
    from provenance.demo.story import run_story

    try:
        result = run_story(args.dir)
    except ProvenanceError as e:
        print(f"story: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("story: interrupted; its servers were stopped", file=sys.stderr)
        return 130
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
