"""The ``apkprov`` command line: ``apkprov <group> <verb>``, thin over the library.

Exit codes (docs/cli.md): 0 success, 1 the check ran and failed, 2 usage or input
error. Results go to stdout, diagnostics to stderr; expected failures never print
a traceback. argparse is used rather than a heavier framework because start-up
time is part of the product: terminals and CI call ``apkprov verify`` per APK.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

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


def show_help(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The action of a command group run without a verb: its help, exit code 2."""

    def run(_args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return EXIT_USAGE

    return run


#: Command name -> module whose ``register(sub)`` adds it. Only the module of the
#: command being run is imported, so ``apkprov verify`` does not pay for the
#: HTTP, TUF and inspection stacks of other commands.
COMMANDS: dict[str, str] = {
    "verify": "provenance.cli.verify",
    "sign": "provenance.cli.sign",
    "lineage": "provenance.cli.lineage",
    "rotate": "provenance.cli.lineage",
    "inspect": "provenance.cli.inspect",
    "check": "provenance.cli.check",
    "log": "provenance.cli.log",
    "witness": "provenance.cli.witness",
    "serve": "provenance.cli.serve",
    "trace": "provenance.cli.trace",
    "actor": "provenance.cli.actor",
    "takedown": "provenance.cli.takedown",
    "statement": "provenance.cli.statement",
    "feed": "provenance.cli.feed",
    "terminal": "provenance.cli.terminal",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser: every command group, or only the one ``argv`` names."""
    p = _Parser(prog="apkprov", description="Traceable, verifiable Android app distribution.")
    p.add_argument("--version", action="version", version=f"apkprov {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    first = next((a for a in (argv or ()) if not a.startswith("-")), None)
    wanted = [COMMANDS[first]] if first in COMMANDS else COMMANDS.values()
    modules = list(dict.fromkeys(wanted))
    for name in modules:
        importlib.import_module(name).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apkprov`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
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
