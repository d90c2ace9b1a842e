"""``apkprov log``: run and check a C2SP transparency log kept in a data folder.

Verbs: ``init`` (new log and key), ``append`` (entries, one per line, each index
printed once durable), ``prove`` (tlog-proof@v1 for an entry), ``verify`` (a whole
log, local or over HTTP, against its public key), ``status``. Thin over
:mod:`provenance.log.log`. Exit codes: 0 done / verified, 1 not verified or not in
the log, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

from provenance.cli import show_help
from provenance.errors import InputError, ProvenanceError
from provenance.log.log import POSTGRES_ENV, PUBLIC_DIR, Log
from provenance.log.store.state import Sequenced

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_IN_FLIGHT = 65536  # entries read ahead of their printed index


def register(sub: Any) -> None:
    """Add the ``log`` command group."""
    p = sub.add_parser(
        "log",
        help="run and check a C2SP transparency log (tiles, checkpoints, proofs)",
        description="A C2SP tiled transparency log in a data folder: serve DATA/public "
        "as the log's URL prefix.",
    )
    p.set_defaults(func=show_help(p))
    verbs = p.add_subparsers(dest="log_command", metavar="VERB")

    init = verbs.add_parser("init", help="create a log and its Ed25519 note key")
    _add_dir(init)
    init.add_argument("--origin", required=True, help="checkpoint origin, e.g. example.com/log")
    _add_postgres(init)
    init.add_argument("--json", action="store_true", help="print a JSON object")
    init.set_defaults(func=run_init)

    append = verbs.add_parser(
        "append",
        help="append entries, one per line; print each index once durable",
        description="Append each line of FILE (or stdin) as one entry (without its line "
        "ending; empty lines are skipped), print its index as soon as it is durably "
        "sequenced, and integrate everything into a signed checkpoint before exiting. "
        "Without input, only integrates entries left pending by an earlier run.",
    )
    _add_dir(append)
    append.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="default: stdin")
    _add_postgres(append)
    append.add_argument("--json", action="store_true", help="one JSON object per entry")
    append.add_argument(
        "--batch",
        type=_positive_int,
        default=4096,
        metavar="N",
        help="most entries per commit (default 4096)",
    )
    append.add_argument(
        "--batch-delay",
        type=_seconds,
        default=0.002,
        metavar="S",
        help="longest wait for a commit batch to fill (default 0.002)",
    )
    append.add_argument(
        "--checkpoint-interval",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="seconds between checkpoints while appending (default 1)",
    )
    append.add_argument(
        "--checkpoint-entries",
        type=_positive_int,
        default=16384,
        metavar="N",
        help="checkpoint as soon as this many entries wait (default 16384)",
    )
    append.set_defaults(func=run_append)

    prove = verbs.add_parser("prove", help="print the tlog-proof@v1 for an entry")
    _add_dir(prove)
    which = prove.add_mutually_exclusive_group(required=True)
    which.add_argument("index", nargs="?", type=_index, metavar="INDEX", help="entry index")
    which.add_argument(
        "--entry-file",
        metavar="F",
        help="find the entry with these bytes (one trailing newline is ignored)",
    )
    prove.add_argument("-o", "--out", metavar="FILE", help="write the proof here")
    _add_postgres(prove)
    prove.add_argument("--json", action="store_true", help="print a JSON object")
    prove.set_defaults(func=run_prove)

    verify = verbs.add_parser(
        "verify",
        help="verify a whole log: signature, every tile, root; consistency with an old checkpoint",
    )
    where = verify.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", metavar="DATA", help="data folder (or its public/ folder)")
    where.add_argument("--url", metavar="URL", help="the log's URL prefix")
    verify.add_argument(
        "--vkey", required=True, metavar="VKEY", help="the log's verifier key, or a file with it"
    )
    verify.add_argument("--old-checkpoint", metavar="FILE", help="a signed checkpoint seen earlier")
    verify.add_argument("--origin", metavar="ORIGIN", help="the origin the log must have")
    verify.add_argument("--json", action="store_true", help="print a JSON object")
    verify.set_defaults(func=run_verify)

    status = verbs.add_parser("status", help="tree size, pending entries, checkpoint")
    _add_dir(status)
    _add_postgres(status)
    status.add_argument("--json", action="store_true", help="print a JSON object")
    status.set_defaults(func=run_status)

    from provenance.cli import log_serve  # the verb's HTTP stack is imported only when run

    log_serve.register(verbs)


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", required=True, metavar="DATA", help="the log's data folder")


def _add_postgres(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--postgres",
        metavar="DSN",
        help=f"keep the state in PostgreSQL (libpq DSN or URL; default ${POSTGRES_ENV})",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an entry index: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"entry indices start at 0: {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"out of range [0, 3600]: {value}")
    return value


def _print_json(obj: object) -> None:
    print(json.dumps(obj, separators=(",", ":")))


# ------------------------------------------------------------------------- init


def run_init(args: argparse.Namespace) -> int:
    with Log.create(args.dir, args.origin, postgres=args.postgres) as log:
        if args.json:
            _print_json(
                {
                    "directory": str(log.directory),
                    "origin": log.origin,
                    "vkey": log.config.vkey,
                    "state": log.config.state,
                    "public": str(log.public_dir),
                }
            )
        else:
            print(log.config.vkey)
            print(
                f"apkprov: created the log {log.origin} in {log.directory}; "
                f"serve {log.public_dir} as its URL prefix",
                file=sys.stderr,
            )
    return EXIT_OK


# ----------------------------------------------------------------------- append


def _lines(stream: IO[bytes]) -> Any:
    """``(line number, entry)`` for each non-empty line, without its line ending."""
    for number, line in enumerate(stream, 1):
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if line:
            yield number, line


def _printer(
    pending: queue.Queue[tuple[int, Future[Sequenced]] | None],
    as_json: bool,
    errors: list[BaseException],
    duplicates: list[int],
) -> None:
    """Print each entry's index in input order, as soon as it is durable."""
    out = sys.stdout
    try:
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                out.flush()  # nothing ready to print: let readers see what we have
                item = pending.get()
            if item is None:
                out.flush()
                return
            line, future = item
            result = future.result()
            if result.duplicate:
                duplicates[0] += 1
            if as_json:
                out.write(
                    json.dumps({"line": line, "index": result.index, "duplicate": result.duplicate})
                    + "\n"
                )
            else:
                out.write(f"{result.index}\n")
    except BaseException as e:  # reported by the main thread
        errors.append(e)
        while pending.get() is not None:  # unblock the reader
            pass


def run_append(args: argparse.Namespace) -> int:
    log = Log.open(
        args.dir,
        postgres=args.postgres,
        max_batch=args.batch,
        max_delay=args.batch_delay,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_entries=args.checkpoint_entries,
    )
    stream: IO[bytes]
    if args.file == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            log.close(integrate=False)
            raise InputError(f"cannot read {args.file}: {e.strerror or e}") from None
    pending: queue.Queue[tuple[int, Future[Sequenced]] | None] = queue.Queue(_IN_FLIGHT)
    errors: list[BaseException] = []
    duplicates = [0]
    printer = threading.Thread(
        target=_printer, args=(pending, args.json, errors, duplicates), daemon=True
    )
    printer.start()
    count = 0
    failure: ProvenanceError | None = None
    try:
        sequencer = log.sequencer
        for number, entry in _lines(stream):
            if errors:
                break
            try:
                future = sequencer.submit(entry)
            except InputError as e:
                failure = InputError(f"{args.file} line {number}: {e}")
                break
            pending.put((number, future))
            count += 1
    finally:
        pending.put(None)
        printer.join()
        if stream is not sys.stdin.buffer:
            stream.close()
    try:
        log.close(integrate=not errors)
    except ProvenanceError as e:
        failure = failure or e
    if errors:
        raise errors[0]
    if failure is not None:
        raise failure
    if not args.json:
        print(
            f"apkprov: {count - duplicates[0]} new entries, {duplicates[0]} already in the log "
            f"{log.origin}",
            file=sys.stderr,
        )
    return EXIT_OK


# ------------------------------------------------------------------------ prove


def _read_entry_file(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith(b"\n") else data


def run_prove(args: argparse.Namespace) -> int:
    from provenance.log.log import NotInLogError

    with Log.open(args.dir, postgres=args.postgres) as log:
        index = args.index
        if args.entry_file is not None:
            found = log.find(_read_entry_file(args.entry_file))
            if found is None:
                raise NotInLogError(f"the entry in {args.entry_file} is not in the log")
            index = found
        proof = log.prove(index)
        text = proof.encode()
    if args.out:
        try:
            Path(args.out).write_bytes(text)
        except OSError as e:
            raise InputError(f"cannot write {args.out}: {e.strerror or e}") from None
    if args.json:
        _print_json({"index": index, "proof": text.decode("utf-8"), "out": args.out})
    elif not args.out:
        sys.stdout.write(text.decode("utf-8"))
    return EXIT_OK


# ----------------------------------------------------------------------- verify


def _load_vkey(value: str) -> str:
    """A vkey given inline, or the first non-empty line of a file holding one."""
    if os.path.isfile(value):
        try:
            lines = Path(value).read_text("utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the verifier key from {value}: {e}") from None
        value = next((line.strip() for line in lines if line.strip()), "")
    return value


def run_verify(args: argparse.Namespace) -> int:
    from provenance.log.log import verify_log
    from provenance.log.note import parse_verifier_key
    from provenance.log.store.tile_store import DirTileStore, TileSource

    verifier = parse_verifier_key(_load_vkey(args.vkey))
    old = None
    if args.old_checkpoint:
        try:
            old = Path(args.old_checkpoint).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read {args.old_checkpoint}: {e.strerror or e}") from None
    source: TileSource
    if args.url:
        from provenance.log.store.http import HttpTileSource

        source = HttpTileSource(args.url)
        where = args.url
    else:
        d = Path(args.dir)
        if not d.is_dir():
            raise InputError(f"{d} is not a directory")
        if (d / PUBLIC_DIR).is_dir():
            d = d / PUBLIC_DIR
        source = DirTileStore(d)
        where = str(d)
    with source:
        result = verify_log(source, verifier, old_checkpoint=old, origin=args.origin)
    if args.json:
        _print_json({"log": where, **result.to_json()})
    elif result.ok:
        cp = result.checkpoint
        assert cp is not None
        print(f"Verifies: {cp.origin} size {cp.size} root {cp.root_hash.hex()}")
        print(f"Checked {result.entries} entries and {result.tiles} tiles")
        if result.old_size is not None:
            print(f"Consistent with the old checkpoint of size {result.old_size}")
    else:
        print("DOES NOT VERIFY")
    for problem in result.problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


# ----------------------------------------------------------------------- status


def run_status(args: argparse.Namespace) -> int:
    with Log.open(args.dir, postgres=args.postgres) as log:
        status = log.status()
    if args.json:
        _print_json(status.to_json())
        return EXIT_OK
    print(f"origin: {status.origin}")
    print(f"vkey: {status.vkey}")
    print(f"state: {status.state}")
    print(f"tree size: {status.size}")
    print(f"root hash: {status.root_hash.hex()}")
    print(f"sequenced: {status.sequenced}")
    print(f"pending: {status.pending}")
    print(f"public: {Path(status.directory) / PUBLIC_DIR}")
    return EXIT_OK
