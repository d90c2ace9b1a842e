"""The evidence bundle: an app's chain with its proofs, verifiable offline.

``apkprov takedown prepare --out FILE`` writes what the trace source answered --
every statement as its DSSE envelope with a c2sp.org/tlog-proof@v1 (which embeds
the signed checkpoint it leads to), the actor registrations the signers' keys come
from, entries fetched to follow references, and the log tiles read to prove that
the answers' checkpoints are consistent -- plus the queries that were run::

    {"format": "apkprov-takedown-evidence/1",
     "created_at": "2026-03-01T10:00:00Z",
     "subject": {"package": "com.example.app"},
     "queries": [{"package": "com.example.app"}],
     "log": {"origin": "...", "checkpoint": "<signed note>", "vkey": "<as given>"},
     "answers": {"actors":  [{"after": -1, "answer": {<GET /v1/actors>}}],
                 "trace":   [{"query": {"package": "..."}, "after": -1,
                              "answer": {<GET /v1/trace>}}],
                 "entries": [{"index": 7, "answer": {<GET /v1/entries/7>}}]},
     "tiles": {"tile/0/000.p/13": "<base64>"},
     "checklist": {<what prepare concluded; informational>}}

``verify-evidence`` replays the answers through the same verifier
(:mod:`.record`), trusting nothing in the file: the log key and the registry root
keys come from the command line, never from the bundle (its ``log.vkey`` is only a
hint), and the checklist is recomputed rather than read.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provenance.errors import InputError
from provenance.statements.schema import format_time
from provenance.takedown.prepare import Prepared, prepare
from provenance.takedown.record import Recording, ReplaySource
from provenance.takedown.subject import Subject
from provenance.trace.answers import QUERY_KINDS
from provenance.trace.verify import Trust

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_BUNDLE_BYTES",
    "EvidenceBundle",
    "bundle_document",
    "read_bundle",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "apkprov-takedown-evidence/1"
MAX_BUNDLE_BYTES = 256 << 20
_MAX_QUERIES = 64


@dataclass
class EvidenceBundle:
    """A parsed bundle: nothing in it is verified yet."""

    subject: Subject
    queries: list[tuple[str, str]]
    recording: Recording
    created_at: str | None
    claimed: dict[str, Any]
    """The checklist prepare wrote (informational; compared, never trusted)."""


def bundle_document(prepared: Prepared, vkey: str | None = None) -> dict[str, Any]:
    """The bundle for a prepared chain (``vkey`` is recorded as a hint only)."""
    cp = prepared.result.checkpoint
    note = None
    if cp is not None:
        for answer in prepared.recording.answers():
            text = answer.get("checkpoint")
            if isinstance(text, str) and text.startswith(f"{cp.origin}\n{cp.size}\n"):
                note = text
                break
    return {
        "format": BUNDLE_FORMAT,
        "created_at": format_time(datetime.now(UTC)),
        "subject": prepared.subject.to_json(),
        "queries": [{k: v} for k, v in prepared.queries],
        "log": {
            "origin": cp.origin if cp else None,
            "checkpoint": note,
            "vkey": vkey,
        },
        **prepared.recording.to_json(),
        "checklist": prepared.checklist.to_json(),
    }


def write_bundle(path: str | os.PathLike[str], doc: dict[str, Any]) -> int:
    """Write the bundle atomically (temporary file, rename); returns its size."""
    data = json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=".evidence-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise InputError(f"cannot write {os.fspath(path)}: {e.strerror or e}") from None
    return len(data)


def read_bundle(path: str | os.PathLike[str]) -> EvidenceBundle:
    """Read and parse a bundle (bounded in size; shapes checked, content not)."""
    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read {where}: {e.strerror or e}") from None
    if len(data) > MAX_BUNDLE_BYTES:
        raise InputError(f"{where} is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise InputError(f"{where} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{where} is not an {BUNDLE_FORMAT} document")
    subject = Subject.from_json(doc.get("subject"), f"{where}: subject")
    raw = doc.get("queries")
    if not isinstance(raw, list) or not 1 <= len(raw) <= _MAX_QUERIES:
        raise InputError(f"{where}: queries must be a list of 1..{_MAX_QUERIES} queries")
    queries: list[tuple[str, str]] = []
    for q in raw:
        if not (isinstance(q, dict) and len(q) == 1):
            raise InputError(f"{where}: a query is an object with one key")
        ((param, value),) = q.items()
        if param not in QUERY_KINDS or not isinstance(value, str):
            raise InputError(f"{where}: unknown query {str(param)[:40]!r}")
        queries.append((param, value))
    if queries[0] != subject.primary:
        raise InputError(f"{where}: the first query is not the subject's")
    claimed = doc.get("checklist")
    created = doc.get("created_at")
    return EvidenceBundle(
        subject,
        queries,
        Recording.from_json(doc, where),
        created if isinstance(created, str) else None,
        claimed if isinstance(claimed, dict) else {},
    )


def verify_bundle(bundle: EvidenceBundle, trust: Trust) -> Prepared:
    """Replay the bundle's answers through the verifier with ``trust``; the
    recomputed checklist is what counts; a bundle whose own summary claims more
    than what verifies gets a warning saying so."""
    prepared = prepare(
        ReplaySource(bundle.recording), trust, bundle.subject, queries=bundle.queries
    )
    claimed_ok = bundle.claimed.get("ok")
    if claimed_ok is True and not prepared.checklist.ok:
        prepared.checklist.warnings.append(
            "the bundle says the chain was complete and verified; it does not verify now"
        )
    return prepared
