"""The ``apkprov`` command line: ``apkprov <group> <verb>``, thin over the library.

Exit codes (docs/cli.md): 0 success, 1 the check ran and failed, 2 usage or input
error. Results go to stdout, diagnostics to stderr; expected failures never print
a traceback. argparse is used rather than a heavier framework because start-up
time is part of the product: terminals and CI call ``apkprov verify`` per APK.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from provenance import __version__
from provenance.errors import ProvenanceError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"apkprov: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command group registered."""
    from provenance.cli import actor as actor_cmd
    from provenance.cli import check as check_cmd
    from provenance.cli import inspect as inspect_cmd
    from provenance.cli import lineage as lineage_cmd
    from provenance.cli import log as log_cmd
    from provenance.cli import serve as serve_cmd
    from provenance.cli import sign as sign_cmd
    from provenance.cli import trace as trace_cmd
    from provenance.cli import verify as verify_cmd
    from provenance.cli import witness as witness_cmd

    p = _Parser(prog="apkprov", description="Traceable, verifiable Android app distribution.")
    p.add_argument("--version", action="version", version=f"apkprov {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    verify_cmd.register(sub)
    sign_cmd.register(sub)
    lineage_cmd.register(sub)
    inspect_cmd.register(sub)
    check_cmd.register(sub)
    log_cmd.register(sub)
    witness_cmd.register(sub)
    serve_cmd.register(sub)
    trace_cmd.register(sub)
    actor_cmd.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apkprov`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        rc: int = args.func(args)
    except ProvenanceError as e:
        print(f"apkprov: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return rc


if __name__ == "__main__":
    sys.exit(main())
