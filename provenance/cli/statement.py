"""``apkprov statement``: write, sign, verify and submit signed life-cycle statements.

Verbs (docs/statements.md, *Command line*):

* ``make TYPE --predicate FILE`` -- fill ``statement_id``/``issued_at``, derive the
  subjects, validate against the predicate's schema; print the in-toto statement.
* ``release APK --developer ID --registration INDEX:LEAFHASH`` -- the release
  statement of a real APK (the APK must verify).
* ``sign STATEMENT --key SIGNER_URI`` -- the DSSE envelope, signed as the statement's
  canonical bytes.
* ``verify ENVELOPE --key-file PUB`` -- the signatures, offline, and the statement.
* ``submit ENVELOPE --url URL --token SPEC`` -- ``POST /v1/statements``; prints the
  log index and leaf hash. A refusal exits 1 with the service's reason code.

Statements and envelopes are written as canonical JSON (the bytes that are signed and
logged). Exit codes: 0 success, 1 signature or refusal, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.cli import show_help
from provenance.errors import InputError

if TYPE_CHECKING:
    from provenance.statements import Envelope, Statement

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Short names of the predicate types (``release`` -> ``.../predicates/release/v1``).
TYPES = (
    "developer-registration",
    "release",
    "shelving",
    "inspection",
    "sdk-registration",
    "actor-registration",
    "takedown",
    "restore",
)

_MAX_INPUT = 1 << 20


def register(sub: Any) -> None:
    """Add the ``statement`` command group."""
    p = sub.add_parser(
        "statement",
        help="write, sign, verify and submit signed life-cycle statements",
        description="Life-cycle statements (in-toto in DSSE envelopes, docs/statements.md) "
        "from the command line: make one from a predicate (or a release from an APK), sign "
        "it with an actor's key, check the signature offline and submit it to the log "
        "service with the actor's token.",
    )
    p.set_defaults(func=show_help(p))
    verbs = p.add_subparsers(dest="statement_command", metavar="VERB")

    q = verbs.add_parser(
        "make",
        help="build and validate a statement from a predicate",
        description="Read the predicate (JSON, '-' for stdin), add a fresh statement_id and "
        "the current issued_at unless it has them, derive the subjects and validate it "
        "against TYPE's schema. Prints the in-toto statement (canonical JSON).",
    )
    q.add_argument("type", metavar="TYPE", help=f"predicate type: {', '.join(TYPES)}")
    q.add_argument("--predicate", required=True, metavar="FILE", help="the predicate JSON")
    q.add_argument("--out", metavar="FILE", help="write the statement to FILE")
    q.set_defaults(func=run_make)

    q = verbs.add_parser(
        "release",
        help="the release statement of an APK",
        description="Verify APK, hash it, read package and version from its manifest and "
        "build the release statement of developer ID citing the developer's registration "
        "entry. An APK that does not verify cannot be released (exit 1).",
    )
    q.add_argument("apk", metavar="APK", help="the signed APK")
    q.add_argument("--developer", required=True, metavar="ID", help="the developer's actor id")
    q.add_argument(
        "--registration",
        required=True,
        metavar="INDEX:LEAFHASH",
        help="the developer-registration log entry: its index and leaf hash (hex)",
    )
    q.add_argument(
        "--sigstore-bundle", metavar="FILE", help="attach this Sigstore bundle (build provenance)"
    )
    q.add_argument("--out", metavar="FILE", help="write the statement to FILE")
    q.set_defaults(func=run_release)

    q = verbs.add_parser(
        "sign",
        help="sign a statement into a DSSE envelope",
        description="Validate the statement and sign its canonical bytes with each --key "
        "(file:PATH, pkcs11:..., or a registered KMS scheme). Prints the DSSE envelope.",
    )
    q.add_argument("statement", metavar="STATEMENT", help="the statement JSON ('-' for stdin)")
    q.add_argument(
        "--key",
        required=True,
        action="append",
        metavar="SIGNER_URI",
        help="the actor's signer: file:PATH, pkcs11:...; repeat for more signatures",
    )
    q.add_argument("--out", metavar="FILE", help="write the envelope to FILE")
    q.set_defaults(func=run_sign)

    q = verbs.add_parser(
        "verify",
        help="check an envelope's signatures offline",
        description="Check that the envelope is signed by the given public key(s) and that "
        "its statement is valid. Exit 1 if no signature verifies.",
    )
    q.add_argument("envelope", metavar="ENVELOPE", help="the DSSE envelope ('-' for stdin)")
    q.add_argument(
        "--key-file",
        required=True,
        action="append",
        metavar="PUB",
        help="a signer's public key (PEM, DER or note vkey); repeatable",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_verify)

    q = verbs.add_parser(
        "submit",
        help="submit a signed statement to the log service",
        description="POST the envelope to the service's /v1/statements with the actor's "
        "bearer token and check the receipt. Prints the log index and leaf hash; exit 1 "
        "with the service's reason code (wrong-role, replay, ...) when it refuses.",
    )
    q.add_argument("envelope", metavar="ENVELOPE", help="the DSSE envelope ('-' for stdin)")
    q.add_argument("--url", required=True, metavar="URL", help="the log service's base URL")
    q.add_argument(
        "--token",
        required=True,
        metavar="TOKEN_SPEC",
        help="the actor's service token: env:NAME, file:PATH, stdin or pass:TOKEN",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_submit)


# ----------------------------------------------------------------- helpers


def _read(path: str, what: str) -> bytes:
    """A bounded input file, or stdin for ``-``."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(_MAX_INPUT + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(_MAX_INPUT + 1)
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > _MAX_INPUT:
        raise InputError(f"{what} {path} is larger than {_MAX_INPUT} bytes")
    return data


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def _emit(data: bytes, out: str | None, summary: str) -> None:
    """The JSON to stdout, or to ``out`` with a one-line summary on stdout."""
    if out:
        _write(out, data + b"\n")
        print(f"{summary}: {out}")
    else:
        sys.stdout.write(data.decode("utf-8") + "\n")


def predicate_type(name: str) -> str:
    """The predicate type URI of a short name (a full known URI is accepted too)."""
    from provenance.statements import PREDICATES
    from provenance.statements.predicates import PREDICATE_PREFIX

    uri = name if name.startswith(PREDICATE_PREFIX) else f"{PREDICATE_PREFIX}{name}/v1"
    if uri not in PREDICATES:
        raise InputError(f"unknown statement type {name!r}; known: {', '.join(TYPES)}")
    return uri


def _step(statement: Statement) -> str:
    from provenance.statements import PREDICATES

    return PREDICATES[statement.predicate_type].step


def _signer_of(statement: Statement) -> str:
    from provenance.statements import PREDICATES

    field = PREDICATES[statement.predicate_type].signer_field
    return str(statement.predicate.get(field, ""))


def _load_statement(path: str) -> Statement:
    from provenance.statements import Statement, validate_statement

    statement = Statement.from_json(_read(path, "statement").strip())
    validate_statement(statement)
    return statement


def _load_envelope(path: str) -> tuple[Envelope, Statement]:
    from provenance.statements import PAYLOAD_TYPE, Envelope, Statement, validate_statement
    from provenance.statements.errors import StatementFormatError

    envelope = Envelope.from_json(_read(path, "envelope").strip())
    if envelope.payload_type != PAYLOAD_TYPE:
        raise StatementFormatError(
            f"envelope payloadType is {envelope.payload_type[:80]!r}, not {PAYLOAD_TYPE!r}"
        )
    statement = Statement.from_json(envelope.payload)
    validate_statement(statement)
    return envelope, statement


def _log_ref(value: str) -> Any:
    from provenance.statements import LogRef
    from provenance.statements.errors import StatementFormatError

    index, sep, digest = value.partition(":")
    try:
        if not sep or not index.isdigit() or len(digest) != 64:
            raise ValueError
        return LogRef(int(index), bytes.fromhex(digest))
    except (ValueError, StatementFormatError):
        raise InputError(
            f"--registration {value!r}: expected INDEX:LEAFHASH (64 hex digits)"
        ) from None


# -------------------------------------------------------------------- verbs


def run_make(args: argparse.Namespace) -> int:
    from provenance.statements import make_statement
    from provenance.statements.canonical import parse_json

    ptype = predicate_type(args.type)
    predicate = parse_json(
        _read(args.predicate, "predicate").strip(),
        max_size=_MAX_INPUT,
        max_depth=24,
        what="predicate",
    )
    if not isinstance(predicate, dict):
        raise InputError(f"predicate {args.predicate}: must be a JSON object")
    statement = make_statement(ptype, predicate)
    _emit(statement.to_json(), args.out, f"{_step(statement)} statement {statement.statement_id}")
    return EXIT_OK


def run_release(args: argparse.Namespace) -> int:
    from provenance.statements import RELEASE, make_statement, release_predicate
    from provenance.statements.canonical import parse_json

    registration = _log_ref(args.registration)
    bundle = None
    if args.sigstore_bundle:
        bundle = parse_json(
            _read(args.sigstore_bundle, "Sigstore bundle"),
            max_size=_MAX_INPUT,
            what="Sigstore bundle",
        )
        if not isinstance(bundle, dict):
            raise InputError(f"Sigstore bundle {args.sigstore_bundle}: must be a JSON object")
    if not Path(args.apk).is_file():
        raise InputError(f"cannot read APK {args.apk}: no such file")
    predicate = release_predicate(
        args.apk,
        developer=args.developer,
        developer_registration=registration,
        sigstore_bundle=bundle,
    )
    statement = make_statement(RELEASE, predicate)
    p = statement.predicate
    summary = f"release statement {statement.statement_id} of {p['package']} {p['version_code']}"
    _emit(statement.to_json(), args.out, summary)
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    from provenance.statements import Signer, open_signer, sign_statement

    statement = _load_statement(args.statement)
    signers: list[Signer] = []
    try:
        for uri in args.key:
            signers.append(open_signer(uri))
        envelope = sign_statement(statement, signers)
    finally:
        for signer in signers:
            close = getattr(signer, "close", None)
            if close is not None:
                close()
    keyids = ", ".join(s.keyid for s in envelope.signatures)
    _emit(envelope.to_json(), args.out, f"{_step(statement)} envelope signed by {keyids}")
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    from provenance.statements import key_id, load_public_key, verify_envelope

    keys: dict[str, Any] = {}
    for path in args.key_file:
        key = load_public_key(_read(path, "public key"))
        keys[key_id(key)] = key
    envelope, statement = _load_envelope(args.envelope)
    verified = verify_envelope(envelope, keys)
    doc: dict[str, Any] = {
        "verified": True,
        "keyids": list(verified),
        "statement_id": statement.statement_id,
        "predicate_type": statement.predicate_type,
        "signer": _signer_of(statement),
        "issued_at": statement.issued_at,
        "subjects": [s.name for s in statement.subjects],
    }
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
    else:
        print(f"verified: {_step(statement)} statement {statement.statement_id}")
        print(f"  signer     {doc['signer']} (key {', '.join(verified)})")
        print(f"  issued at  {statement.issued_at}")
        print(f"  subjects   {', '.join(doc['subjects'])}")
    return EXIT_OK


def run_submit(args: argparse.Namespace) -> int:
    from provenance.takedown import submit_statement
    from provenance.takedown.submit import SubmissionRefused, read_token

    token = read_token(args.token)
    envelope, statement = _load_envelope(args.envelope)
    try:
        receipt = submit_statement(args.url, token, envelope.to_json())
    except SubmissionRefused as e:
        if not args.json:
            raise
        out = {"error": e.code, "status": e.status, "message": str(e)}
        print(json.dumps(out, ensure_ascii=False))
        print(f"apkprov: {e}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(receipt.to_json(), ensure_ascii=False))
        return EXIT_OK
    print(f"{_step(statement)} submitted: log entry {receipt.index}")
    print(f"  leaf hash     {receipt.leaf_hash}")
    print(f"  statement id  {receipt.statement_id}")
    print(f"  signer        {receipt.signer}")
    print(f"  log ref       {receipt.index}:{receipt.leaf_hash}")
    return EXIT_OK
