"""in-toto Statement v1 (github.com/in-toto/attestation, spec/v1/statement.md).

A statement binds a typed predicate to subjects identified by digests::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": ..., "digest": {"sha256": ...}}, ...],
     "predicateType": "https://apk-provenance.dev/predicates/<step>/v1",
     "predicate": {...}}

This module reads and writes that layer only, in a strict profile: subjects carry a
name and a SHA-256 digest and nothing else, unknown top-level fields are refused, and
the encoding is canonical JSON (:mod:`provenance.statements.canonical`). Subjects are
how trace queries find statements, so every subject is a digest: artifacts (APK, SDK
archive, certificate) by their content hash, and things without content (a package
name, an actor, an SDK as a whole) by a *name subject* whose digest is the SHA-256 of
its UTF-8 name (:meth:`Subject.named`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.statements.canonical import canonical_json, parse_json
from provenance.statements.dsse import Envelope, sign_envelope
from provenance.statements.errors import StatementFormatError, StatementTooLarge
from provenance.statements.signers import Signer

__all__ = [
    "MAX_STATEMENT_SIZE",
    "MAX_SUBJECTS",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "Statement",
    "Subject",
    "sign_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_STATEMENT_SIZE = 384 * 1024
"""Default bound on a statement's encoded size (the DSSE payload)."""
MAX_SUBJECTS = 64
_MAX_NAME = 512
_HEX64 = re.compile(r"[0-9a-f]{64}")
_URI = re.compile(r"https://[\x21-\x7e]{1,240}")


@dataclass(frozen=True)
class Subject:
    """One subject: a name and its SHA-256 digest (lowercase hex)."""

    name: str
    sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= _MAX_NAME:
            raise StatementFormatError(f"subject name must be 1..{_MAX_NAME} characters")
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise StatementFormatError(
                f"subject {self.name!r}: sha256 digest must be 64 lowercase hex digits"
            )

    @classmethod
    def named(cls, name: str) -> Subject:
        """A name subject: its digest is SHA-256 of the UTF-8 name."""
        return cls(name, hashlib.sha256(name.encode("utf-8")).hexdigest())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256}}

    @classmethod
    def from_dict(cls, obj: object, path: str) -> Subject:
        if not isinstance(obj, dict) or set(obj) != {"name", "digest"}:
            raise StatementFormatError(f"{path}: a subject has exactly name and digest")
        digest = obj["digest"]
        if not isinstance(digest, dict) or set(digest) != {"sha256"}:
            raise StatementFormatError(f"{path}.digest: must hold exactly a sha256 digest")
        if not isinstance(obj["name"], str) or not isinstance(digest["sha256"], str):
            raise StatementFormatError(f"{path}: name and digest must be strings")
        try:
            return cls(obj["name"], digest["sha256"])
        except StatementFormatError as e:
            raise StatementFormatError(f"{path}: {e}") from None


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1: predicate type, subjects (sorted) and the predicate.

    Subjects are kept sorted by (name, digest) so that equal statements encode equally.
    """

    predicate_type: str
    subjects: tuple[Subject, ...]
    predicate: dict[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.predicate_type, str) or not _URI.fullmatch(self.predicate_type):
            raise StatementFormatError("predicateType must be an https URI of printable ASCII")
        if not self.subjects:
            raise StatementFormatError("a statement needs at least one subject")
        if len(self.subjects) > MAX_SUBJECTS:
            raise StatementTooLarge(f"a statement has at most {MAX_SUBJECTS} subjects")
        ordered = tuple(sorted(set(self.subjects), key=lambda s: (s.name, s.sha256)))
        if len(ordered) != len(self.subjects):
            raise StatementFormatError("a statement lists the same subject twice")
        object.__setattr__(self, "subjects", ordered)
        if not isinstance(self.predicate, dict):
            raise StatementFormatError("predicate must be a JSON object")

    @property
    def statement_id(self) -> str:
        """The predicate's ``statement_id`` (every predicate here has one)."""
        value = self.predicate.get("statement_id")
        if not isinstance(value, str):
            raise StatementFormatError("predicate has no statement_id")
        return value

    @property
    def issued_at(self) -> str:
        """The predicate's ``issued_at`` (RFC 3339 UTC)."""
        value = self.predicate.get("issued_at")
        if not isinstance(value, str):
            raise StatementFormatError("predicate has no issued_at")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_dict() for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    def to_json(self) -> bytes:
        """Canonical JSON bytes: the DSSE payload, serialized once."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes, *, max_size: int = MAX_STATEMENT_SIZE) -> Statement:
        """Parse the statement layer strictly (the predicate is checked elsewhere)."""
        obj = parse_json(data, max_size=max_size, max_depth=24, what="in-toto statement")
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: object) -> Statement:
        if not isinstance(obj, dict):
            raise StatementFormatError("in-toto statement must be a JSON object")
        keys = {"_type", "subject", "predicateType", "predicate"}
        if set(obj) != keys:
            missing, extra = keys - set(obj), set(obj) - keys
            raise StatementFormatError(
                f"in-toto statement fields: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        if obj["_type"] != STATEMENT_TYPE:
            raise StatementFormatError(
                f"_type must be {STATEMENT_TYPE!r}, got {str(obj['_type'])[:80]!r}"
            )
        raw = obj["subject"]
        if not isinstance(raw, list) or not raw:
            raise StatementFormatError("subject must be a non-empty list")
        if len(raw) > MAX_SUBJECTS:
            raise StatementTooLarge(f"a statement has at most {MAX_SUBJECTS} subjects")
        subjects = tuple(Subject.from_dict(s, f"subject[{i}]") for i, s in enumerate(raw))
        return cls(obj["predicateType"], subjects, obj["predicate"])


def sign_statement(statement: Statement, signers: Sequence[Signer]) -> Envelope:
    """The DSSE envelope of ``statement``: its canonical bytes, signed as they are."""
    return sign_envelope(statement.to_json(), PAYLOAD_TYPE, signers)
