"""What a logged statement is found by, and what it cites.

The trace index is a pure function of the log: :func:`index_row` turns one log entry
into the row the index keeps for it, so rebuilding the index from the log gives the
same rows. Statements are looked up by *keys* ``(kind, value)``:

=========  =====================================================================
kind       value, from
=========  =====================================================================
package    package name: every ``package:<name>`` subject (release, shelving,
           inspection, app and version takedowns and restores)
apk        APK SHA-256: every ``apk:<package>`` subject
cert       signer certificate SHA-256: ``cert:`` subjects (developer
           registrations), a release's ``signer_certificates``, rotations
actor      the signing actor, and ``actor:<id>`` subjects (registrations)
sdk        SDK id: ``sdk:`` subjects, and SDKs a shelving's listing declares
key        actor key ID: ``key:`` subjects (actor registrations)
type       the predicate type URI
=========  =====================================================================

Keys come from subjects (which the statements layer derives from the predicate and
checks on acceptance) plus a few predicate fields subjects do not carry. The
client recomputes them with :func:`statement_keys` to check that every answer
really matches its query, so an index cannot pass off unrelated statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from provenance.errors import ProvenanceError
from provenance.log.merkle import leaf_hash
from provenance.statements import Envelope, LogRef, Statement, validate_statement
from provenance.statements.predicates import DEVELOPER_REGISTRATION, RELEASE, SHELVING

__all__ = [
    "KINDS",
    "IndexRow",
    "index_row",
    "parse_entry",
    "statement_keys",
    "statement_refs",
]

KINDS = ("package", "apk", "cert", "actor", "sdk", "key", "type")
"""Every key kind the index answers by."""

_SUBJECT_KINDS = {"package": "package", "cert": "cert", "actor": "actor", "key": "key"}


@dataclass(frozen=True)
class IndexRow:
    """One indexed log entry: where it is, what it is, and its keys."""

    index: int
    leaf_hash: bytes
    predicate_type: str
    signer: str
    statement_id: str
    issued_at: str
    entry: bytes
    keys: frozenset[tuple[str, str]]


def parse_entry(entry: bytes) -> tuple[Envelope, Statement]:
    """The envelope and the validated statement of a log entry (no signature check:
    the log accepted it; clients check signatures themselves)."""
    envelope = Envelope.from_json(entry)
    statement = Statement.from_json(envelope.payload)
    validate_statement(statement)
    return envelope, statement


def statement_keys(statement: Statement) -> frozenset[tuple[str, str]]:
    """The ``(kind, value)`` keys of a (validated) statement."""
    spec = validate_statement(statement)
    p = statement.predicate
    keys: set[tuple[str, str]] = {("type", statement.predicate_type)}
    keys.add(("actor", p[spec.signer_field]))
    for s in statement.subjects:
        prefix, _, rest = s.name.partition(":")
        if prefix == "apk":
            keys.add(("apk", s.sha256))
        elif prefix == "sdk":
            keys.add(("sdk", rest.split("@", 1)[0]))
        elif prefix in _SUBJECT_KINDS:
            keys.add((_SUBJECT_KINDS[prefix], rest))
    if statement.predicate_type == RELEASE:
        keys.update(("cert", c) for c in p["signer_certificates"])
    elif statement.predicate_type == DEVELOPER_REGISTRATION:
        for r in p["rotations"]:
            keys.add(("cert", r["from_sha256"]))
            keys.add(("cert", r["to_sha256"]))
    elif statement.predicate_type == SHELVING:
        keys.update(("sdk", s["id"]) for s in p["metadata"]["sdks"])
    return frozenset(keys)


def _walk_refs(value: Any, path: str) -> Iterator[tuple[str, LogRef]]:
    if isinstance(value, dict):
        if {"index", "leaf_hash"} <= set(value) <= {"index", "leaf_hash", "log"}:
            yield path, LogRef.from_dict(value, path)
            return
        for k, v in value.items():
            if k != "build_provenance":  # a Sigstore bundle: foreign JSON, no refs of ours
                yield from _walk_refs(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_refs(v, f"{path}[{i}]")


def statement_refs(statement: Statement) -> list[tuple[str, LogRef]]:
    """Every log reference in the predicate, with its field path (``release``,
    ``evidence[0]``, ``metadata.sdks[1].registration``, ...)."""
    return list(_walk_refs(statement.predicate, ""))


def index_row(index: int, entry: bytes) -> IndexRow | None:
    """The index row for the log entry at ``index``; None if it is not a statement
    (a log may hold other entries; they are skipped, not refused)."""
    try:
        _, statement = parse_entry(entry)
        spec = validate_statement(statement)
        keys = statement_keys(statement)
    except ProvenanceError:
        return None
    return IndexRow(
        index=index,
        leaf_hash=leaf_hash(entry),
        predicate_type=statement.predicate_type,
        signer=statement.predicate[spec.signer_field],
        statement_id=statement.statement_id,
        issued_at=statement.issued_at,
        entry=entry,
        keys=keys,
    )
