"""tlog-witness (c2sp.org/tlog-witness): the witness server and the log-side client.

A witness keeps, per log origin, the latest checkpoint it cosigned. ``POST
/add-checkpoint`` brings a new checkpoint with a consistency proof from the size the
log believes the witness is at; the witness checks the log's signature and the proof,
persists the new tree head and returns a ``cosignature/v1`` line (Ed25519, type 0x04).
The check of the old size and the update are one compare-and-swap in SQLite, so
concurrent requests can never roll a witness back.

The witness is split in three layers so each can be tested on its own:

* :class:`Witness` — the protocol, HTTP-free: bytes in, cosignature lines or a
  :class:`WitnessRejection` carrying the status code out;
* :class:`WitnessStore` — the per-origin state in SQLite (WAL, fsync on commit);
* :func:`witness_app` — the Starlette ASGI app (run it with uvicorn).

The log side is :func:`gather_cosignatures`: it posts a checkpoint to witnesses
concurrently, follows ``409 Conflict`` answers to the witness's size, verifies each
cosignature and returns the checkpoint with the cosignature lines appended.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from provenance.errors import InputError, NoteError, ProofError, ProvenanceError, SignatureError
from provenance.log.checkpoint import open_checkpoint, parse_checkpoint
from provenance.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    consistency_proof,
    verify_consistency,
)
from provenance.log.note import (
    CosignatureV1Signer,
    Note,
    Signature,
    Verifier,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from provenance.log.tiles import TileHashReader, TileReader

__all__ = [
    "KEY_FILE",
    "LOGS_FILE",
    "MAX_ADD_CHECKPOINT_BODY",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "STATE_FILE",
    "AddCheckpointRequest",
    "CosignResult",
    "KnownLog",
    "LatestCheckpoint",
    "LogRegistry",
    "ProofProvider",
    "Witness",
    "WitnessEndpoint",
    "WitnessOutcome",
    "WitnessRejection",
    "WitnessStore",
    "add_log",
    "format_add_checkpoint_request",
    "gather_cosignatures",
    "gather_cosignatures_sync",
    "init_witness",
    "load_logs",
    "open_witness",
    "origin_hash",
    "parse_add_checkpoint_request",
    "tile_proof_provider",
    "witness_app",
]

logger = logging.getLogger(__name__)

KEY_FILE = "witness.key"
"""The witness's cosignature/v1 private key (Go ``PRIVATE+KEY+...`` string), mode 0600."""
LOGS_FILE = "logs.json"
"""Configured logs: ``{"logs": [{"origin": ..., "vkeys": [...]}]}``."""
STATE_FILE = "state.db"
"""SQLite database with the latest cosigned checkpoint per origin."""

MAX_ADD_CHECKPOINT_BODY = 128 * 1024
"""Bound on an add-checkpoint request: 63 proof lines and a note with 16 post-quantum
signatures (the most signed-note asks verifiers to accept) fit with room to spare."""
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_TEXT = "text/plain; charset=utf-8"
_MAX_RESPONSE = 64 * 1024
_MAX_LOGS_FILE = 4 << 20
_DECIMAL = re.compile(rb"0|[1-9][0-9]{0,18}")


def origin_hash(origin: str) -> str:
    """Lowercase hex SHA-256 of the origin: the monitoring path element."""
    return hashlib.sha256(origin.encode("utf-8", "surrogateescape")).hexdigest()


# --------------------------------------------------------------- request format


class WitnessRejection(ProvenanceError):
    """The witness refuses a request; ``status`` is the HTTP status the spec assigns.

    ``latest_size`` is set for ``409 Conflict``: the size the witness is at.
    """

    def __init__(self, status: int, message: str, latest_size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.latest_size = latest_size


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A parsed add-checkpoint body; ``checkpoint`` is the signed note, unverified."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


def _b64_hash(line: bytes) -> bytes | None:
    try:
        raw = binascii.a2b_base64(line, strict_mode=True)
    except (ValueError, binascii.Error):
        return None
    if len(raw) != HASH_SIZE or base64.b64encode(raw) != line:
        return None
    return raw


def parse_add_checkpoint_request(body: bytes) -> AddCheckpointRequest:
    """Split ``old <n>``, proof lines, a blank line and the checkpoint note.

    Strict (canonical decimal, canonical base64 of 32 bytes, at most 63 proof lines);
    anything else is a 400 :class:`WitnessRejection`.
    """
    if len(body) > MAX_ADD_CHECKPOINT_BODY:
        raise WitnessRejection(413, f"request is larger than {MAX_ADD_CHECKPOINT_BODY} bytes")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise WitnessRejection(400, "request has no blank line before the checkpoint")
    lines = head.split(b"\n")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRejection(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    first = lines[0]
    if not first.startswith(b"old ") or not _DECIMAL.fullmatch(first[4:]):
        raise WitnessRejection(400, "first line must be 'old <size>' in canonical decimal")
    old_size = int(first[4:])
    if old_size > MAX_TREE_SIZE:
        raise WitnessRejection(400, "old size is out of range")
    proof = []
    for i, line in enumerate(lines[1:]):
        h = _b64_hash(line)
        if h is None:
            raise WitnessRejection(400, f"consistency proof line {i} is not a base64 hash")
        proof.append(h)
    return AddCheckpointRequest(old_size, tuple(proof), note)


def format_add_checkpoint_request(
    old_size: int, proof: Sequence[bytes], checkpoint: bytes | str
) -> bytes:
    """Encode an add-checkpoint body (the inverse of :func:`parse_add_checkpoint_request`)."""
    if not 0 <= old_size <= MAX_TREE_SIZE:
        raise InputError(f"old size {old_size} is out of range")
    if len(proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in proof):
        raise InputError(f"a consistency proof is at most {MAX_PROOF_LINES} 32-byte hashes")
    if isinstance(checkpoint, str):
        checkpoint = checkpoint.encode("utf-8")
    lines = [b"old %d\n" % old_size, *(base64.b64encode(h) + b"\n" for h in proof), b"\n"]
    return b"".join(lines) + checkpoint


# --------------------------------------------------------------- configured logs


@dataclass(frozen=True)
class KnownLog:
    """A log the witness cosigns for: its origin line and the keys it signs with."""

    origin: str
    vkeys: tuple[str, ...]
    verifiers: tuple[Verifier, ...] = field(compare=False, repr=False)

    @classmethod
    def from_vkeys(cls, origin: str, vkeys: Sequence[str]) -> KnownLog:
        """Parse the vkeys; :class:`NoteError` if one is malformed."""
        if not isinstance(origin, str) or not origin or "\n" in origin:
            raise InputError(f"log origin must be one non-empty line, got {origin!r}")
        if not vkeys:
            raise InputError(f"log {origin!r} needs at least one verifier key")
        verifiers = tuple(parse_verifier_key(v) for v in vkeys)
        ids = {(v.name, v.key_id) for v in verifiers}
        if len(ids) != len(verifiers):
            raise InputError(f"log {origin!r} lists the same key twice")
        return cls(origin, tuple(vkeys), verifiers)


def load_logs(path: Path) -> dict[str, KnownLog]:
    """Read ``logs.json``; a missing file means no logs. :class:`InputError` if malformed."""
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_LOGS_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > _MAX_LOGS_FILE:
        raise InputError(f"{path} is larger than {_MAX_LOGS_FILE} bytes")
    try:
        doc = json.loads(raw)
        entries = doc["logs"]
        if not isinstance(entries, list):
            raise TypeError
        logs: dict[str, KnownLog] = {}
        for entry in entries:
            origin, vkeys = entry["origin"], entry["vkeys"]
            if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
                raise TypeError
            if origin in logs:
                raise InputError(f"{path}: origin {origin!r} is listed twice")
            logs[origin] = KnownLog.from_vkeys(origin, vkeys)
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f'{path} is not {{"logs": [{{"origin": str, "vkeys": [str, ...]}}, ...]}}'
        ) from None
    return logs


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_logs(path: Path, logs: Mapping[str, KnownLog]) -> None:
    doc = {"logs": [{"origin": o, "vkeys": list(log.vkeys)} for o, log in sorted(logs.items())]}
    _write_atomically(path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())


class LogRegistry:
    """The configured logs, re-read when ``logs.json`` changes so that ``apkprov
    witness add-log`` takes effect without restarting the server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = False
        self._logs: dict[str, KnownLog] = {}
        self._reload()

    def _reload(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if self._loaded and stamp == self._stamp:
                return
            try:
                self._logs = load_logs(self.path)
            except InputError as e:  # keep serving the last good configuration
                logger.error("ignoring unreadable log configuration: %s", e)
            self._stamp = stamp
            self._loaded = True

    def get(self, origin: str) -> KnownLog | None:
        self._reload()
        return self._logs.get(origin)

    def origins(self) -> list[str]:
        self._reload()
        return sorted(self._logs)


# --------------------------------------------------------------------- state


@dataclass(frozen=True)
class LatestCheckpoint:
    """The latest checkpoint a witness cosigned for a log; ``note`` carries the log
    signatures the witness verified and the witness's own cosignature."""

    origin: str
    size: int
    root_hash: bytes
    note: bytes


_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    origin_hash TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    note BLOB NOT NULL,
    updated_at INTEGER NOT NULL
)
"""


class WitnessStore:
    """Latest cosigned checkpoint per origin in SQLite (WAL, ``synchronous=FULL`` so a
    commit is on disk before the witness answers).

    :meth:`compare_and_swap` is one conditional statement, which SQLite executes
    atomically across threads and processes: a request that checked consistency
    against a state that has since moved on cannot overwrite it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: callers run on a thread pool, and
        # sqlite3 connections must not be shared between threads.
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    def latest(self, origin: str) -> LatestCheckpoint | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT size, root_hash, note FROM checkpoints WHERE origin = ?",
                (origin,),
            ).fetchone()
        return None if row is None else LatestCheckpoint(origin, row[0], row[1], row[2])

    def latest_by_hash(self, digest: str) -> LatestCheckpoint | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT origin, size, root_hash, note FROM checkpoints WHERE origin_hash = ?",
                (digest,),
            ).fetchone()
        return None if row is None else LatestCheckpoint(*row)

    def compare_and_swap(self, expected: LatestCheckpoint | None, new: LatestCheckpoint) -> bool:
        """Store ``new`` if the origin's state is still ``expected`` (None: no state)."""
        if expected is not None and expected.origin != new.origin:
            raise ValueError("compare_and_swap across origins")
        now = int(time.time())
        with self._connect() as db:
            if expected is None:
                cur = db.execute(
                    "INSERT INTO checkpoints (origin, origin_hash, size, root_hash, note,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING",
                    (new.origin, origin_hash(new.origin), new.size, new.root_hash, new.note, now),
                )
            else:
                cur = db.execute(
                    "UPDATE checkpoints SET size = ?, root_hash = ?, note = ?, updated_at = ?"
                    " WHERE origin = ? AND size = ? AND root_hash = ?",
                    (
                        new.size,
                        new.root_hash,
                        new.note,
                        now,
                        new.origin,
                        expected.size,
                        expected.root_hash,
                    ),
                )
            return cur.rowcount == 1


# ------------------------------------------------------------------- witness


class Witness:
    """The add-checkpoint protocol, without HTTP: see :meth:`add_checkpoint`."""

    def __init__(
        self,
        signer: CosignatureV1Signer,
        logs: LogRegistry | Mapping[str, KnownLog],
        store: WitnessStore,
    ) -> None:
        if not isinstance(signer, CosignatureV1Signer):
            raise InputError("a witness signs with a cosignature/v1 (type 0x04) key")
        self.signer = signer
        self.logs = logs
        self.store = store

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def _log(self, origin: str) -> KnownLog | None:
        return self.logs.get(origin)

    def add_checkpoint(self, body: bytes) -> bytes:
        """Check and cosign one add-checkpoint request; return the cosignature line.

        Raises :class:`WitnessRejection` with the spec's status: 400 malformed or old
        size above the checkpoint size, 403 no valid log signature, 404 unknown
        origin, 409 old size is not the witness's size, 422 inconsistent.
        """
        req = parse_add_checkpoint_request(body)
        try:
            parsed = parse_note(req.checkpoint)
        except NoteError as e:
            raise WitnessRejection(400, f"malformed checkpoint note: {e}") from None
        origin = parsed.text.split("\n", 1)[0]
        log = self._log(origin)
        if log is None:
            raise WitnessRejection(404, f"unknown log origin {origin[:200]!r}")
        try:
            signed = open_checkpoint(req.checkpoint, log.verifiers, origin=origin)
        except SignatureError as e:
            raise WitnessRejection(403, f"checkpoint not signed by the log: {e}") from None
        except NoteError as e:
            raise WitnessRejection(400, f"malformed checkpoint: {e}") from None
        cp = signed.checkpoint
        if req.old_size > cp.size:
            raise WitnessRejection(
                400, f"old size {req.old_size} is larger than the checkpoint size {cp.size}"
            )

        latest = self.store.latest(origin)
        current = 0 if latest is None else latest.size
        if req.old_size != current:
            raise WitnessRejection(
                409, f"witness is at size {current}, not {req.old_size}", current
            )
        if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
            self._misbehaviour(origin, "checkpoint of size 0 without the empty root")
        if req.old_size == 0:
            if req.proof:
                self._misbehaviour(origin, "consistency proof from size 0 must be empty")
        else:
            assert latest is not None  # current == old_size > 0
            try:
                verify_consistency(latest.size, cp.size, req.proof, latest.root_hash, cp.root_hash)
            except ProofError as e:
                self._misbehaviour(origin, str(e))

        cosigned = sign_note(Note(signed.note.text, signed.log_signatures), [self.signer])
        new = LatestCheckpoint(origin, cp.size, cp.root_hash, cosigned)
        if not self.store.compare_and_swap(latest, new):
            now = self.store.latest(origin)
            size = 0 if now is None else now.size
            raise WitnessRejection(409, f"witness moved to size {size} meanwhile", size)
        # sign_note puts the new signature last.
        return parse_note(cosigned).unverified[-1].line().encode("utf-8")

    def _misbehaviour(self, origin: str, what: str) -> NoReturn:
        # The checkpoint is validly signed, so this is evidence against the log.
        logger.warning("log %r sent an inconsistent checkpoint: %s", origin, what)
        raise WitnessRejection(422, what)

    def latest_checkpoint(self, digest: str) -> bytes | None:
        """The cosigned checkpoint for the origin with SHA-256 ``digest`` (hex), if any."""
        latest = self.store.latest_by_hash(digest)
        return None if latest is None else latest.note


def init_witness(directory: Path, name: str) -> CosignatureV1Signer:
    """Create a witness directory: a fresh cosignature/v1 key, no logs, empty state."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / KEY_FILE
    if key_path.exists():
        raise InputError(f"{key_path} already exists; refusing to replace a witness key")
    signer = CosignatureV1Signer.generate(name)
    _write_atomically(key_path, (signer.skey + "\n").encode(), mode=0o600)
    if not (directory / LOGS_FILE).exists():
        _save_logs(directory / LOGS_FILE, {})
    WitnessStore(directory / STATE_FILE)
    return signer


def add_log(directory: Path, origin: str, vkeys: Sequence[str]) -> KnownLog:
    """Add a log (or more keys for a known origin) to ``logs.json``."""
    path = directory / LOGS_FILE
    if not (directory / KEY_FILE).exists():
        raise InputError(f"{directory} is not a witness directory (run 'witness init')")
    logs = load_logs(path)
    old = logs.get(origin)
    merged = list(old.vkeys) if old else []
    merged += [v for v in vkeys if v not in merged]
    log = KnownLog.from_vkeys(origin, merged)
    logs[origin] = log
    _save_logs(path, logs)
    return log


def _load_signer(path: Path) -> CosignatureV1Signer:
    try:
        text = path.read_text("utf-8").strip()
    except FileNotFoundError:
        raise InputError(f"{path} not found (run 'apkprov witness init')") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    try:
        signer = parse_signer_key(text)
    except NoteError:
        raise InputError(f"{path} does not hold a signer key") from None
    if not isinstance(signer, CosignatureV1Signer):
        raise InputError(f"{path} holds an Ed25519 note key, not a cosignature/v1 key")
    return signer


def open_witness(directory: Path) -> Witness:
    """The witness stored in ``directory`` (see :func:`init_witness`)."""
    signer = _load_signer(directory / KEY_FILE)
    return Witness(signer, LogRegistry(directory / LOGS_FILE), WitnessStore(directory / STATE_FILE))


# --------------------------------------------------------------------- HTTP


def _text(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(text.encode("utf-8") + b"\n", status, headers=headers, media_type=_TEXT)


def _rejection_response(e: WitnessRejection) -> Response:
    if e.status == 409 and e.latest_size is not None:
        # Exactly this content type, without a charset parameter.
        return Response(b"%d\n" % e.latest_size, 409, headers={"Content-Type": SIZE_CONTENT_TYPE})
    return _text(e.status, str(e))


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) before buffering more than ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise WitnessRejection(400, "malformed Content-Length")
        if int(length) > limit:
            raise WitnessRejection(413, f"request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise WitnessRejection(413, f"request body is larger than {limit} bytes")
    return bytes(body)


def witness_app(witness: Witness) -> Starlette:
    """The ASGI app: ``POST /add-checkpoint`` and ``GET /<origin hash>/checkpoint``.

    Submission and monitoring prefixes are both the app's root; mount it elsewhere
    with a Starlette ``Mount`` or uvicorn's ``--root-path``.
    """

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _read_body(request, MAX_ADD_CHECKPOINT_BODY)
            lines = await run_in_threadpool(witness.add_checkpoint, body)
        except WitnessRejection as e:
            return _rejection_response(e)
        except ClientDisconnect:
            return _text(400, "client disconnected")
        return Response(lines, 200, media_type=_TEXT)

    async def checkpoint(request: Request) -> Response:
        digest = request.path_params["digest"]
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return _text(404, "not found")
        note = await run_in_threadpool(witness.latest_checkpoint, digest)
        if note is None:
            return _text(404, "no checkpoint cosigned for this log", {"Cache-Control": "no-cache"})
        return Response(note, 200, media_type=_TEXT, headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route("/{digest}/checkpoint", checkpoint, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False  # exact paths only, as a static bucket
    return app


# --------------------------------------------------------------- log side


ProofProvider = Callable[[int, int], Sequence[bytes] | Awaitable[Sequence[bytes]]]
"""``(old_size, new_size) -> consistency proof``; sync or async, ``0 < old <= new``."""


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness as the log sees it: a name (the key for known sizes), the
    submission prefix URL and the cosigner's verifier."""

    name: str
    url: str
    verifier: Verifier

    @classmethod
    def from_vkey(cls, vkey: str, url: str, name: str | None = None) -> WitnessEndpoint:
        verifier = parse_verifier_key(vkey)
        return cls(name or verifier.name, url, verifier)

    @property
    def add_checkpoint_url(self) -> str:
        return self.url.rstrip("/") + "/add-checkpoint"


@dataclass(frozen=True)
class WitnessOutcome:
    """What one witness did: its cosignature, or why not; ``size`` is the witness's
    size as now known (the checkpoint size after a cosignature, the size from a 409)."""

    name: str
    cosignature: Signature | None = None
    size: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class CosignResult:
    """The checkpoint with the cosignatures gathered, and each witness's outcome.

    ``complete`` says whether the stop condition was met (all witnesses cosigned, or
    the ``enough`` predicate became true) before the deadline.
    """

    note: bytes
    outcomes: Mapping[str, WitnessOutcome]
    complete: bool

    @property
    def cosignatures(self) -> tuple[Signature, ...]:
        return tuple(o.cosignature for o in self.outcomes.values() if o.cosignature)

    @property
    def cosigners(self) -> frozenset[tuple[str, int]]:
        """(name, key ID) of each witness that cosigned, as ``SignedCheckpoint.cosigners``."""
        return frozenset((s.name, s.key_id) for s in self.cosignatures)

    @property
    def sizes(self) -> dict[str, int]:
        """Witness sizes learned in this round, to persist for the next one."""
        return {n: o.size for n, o in self.outcomes.items() if o.size is not None}

    @property
    def errors(self) -> dict[str, str]:
        return {n: o.error for n, o in self.outcomes.items() if o.error is not None}


class _Presigned:
    """A :class:`~provenance.log.note.Signer` that hands back a signature made
    elsewhere, so :func:`sign_note` can order and de-duplicate cosignature lines."""

    def __init__(self, sig: Signature) -> None:
        self._sig = sig

    @property
    def name(self) -> str:
        return self._sig.name

    @property
    def key_id(self) -> int:
        return self._sig.key_id

    def sign(self, message: bytes) -> bytes:
        return self._sig.signature


async def _read_response(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > _MAX_RESPONSE:
            raise InputError(f"response larger than {_MAX_RESPONSE} bytes")
    return bytes(data)


def _parse_size_body(body: bytes) -> int | None:
    if not body.endswith(b"\n") or not _DECIMAL.fullmatch(body[:-1]):
        return None
    size = int(body[:-1])
    return size if size <= MAX_TREE_SIZE else None


class _Round:
    """One checkpoint being cosigned: shared request state and the proof cache."""

    def __init__(
        self,
        note: bytes,
        text: str,
        size: int,
        provider: ProofProvider,
        client: httpx.AsyncClient,
        max_retries: int,
    ) -> None:
        self.note = note
        self.text = text
        self.size = size
        self.provider = provider
        self.client = client
        self.max_retries = max_retries
        self._proofs: dict[int, Sequence[bytes]] = {}

    async def proof(self, old: int) -> Sequence[bytes]:
        if old == 0:
            return ()
        if old not in self._proofs:
            try:
                result = self.provider(old, self.size)
                if inspect.isawaitable(result):
                    result = await result
            except ProvenanceError:
                raise
            except Exception as e:  # a broken provider fails this witness, not the round
                raise InputError(f"consistency proof {old} -> {self.size} failed: {e!r}") from e
            self._proofs[old] = tuple(result)
        return self._proofs[old]

    async def cosign(self, w: WitnessEndpoint, old: int | None) -> WitnessOutcome:
        size = old
        old = old or 0
        for _ in range(self.max_retries + 1):
            if old > self.size:
                return WitnessOutcome(w.name, None, size, f"witness is ahead at size {old}")
            try:
                body = format_add_checkpoint_request(old, await self.proof(old), self.note)
                async with self.client.stream("POST", w.add_checkpoint_url, content=body) as r:
                    data = await _read_response(r)
            except (httpx.HTTPError, ProvenanceError, OSError) as e:
                return WitnessOutcome(w.name, None, size, f"{type(e).__name__}: {e}")
            if r.status_code == 409:
                learned = _parse_size_body(data)
                ctype = r.headers.get("content-type", "").split(";")[0].strip()
                if learned is None or ctype != SIZE_CONTENT_TYPE or learned == old:
                    return WitnessOutcome(w.name, None, size, "malformed 409 Conflict response")
                old = size = learned
                continue
            if r.status_code != 200:
                reason = data[:200].decode("utf-8", "replace").strip()
                return WitnessOutcome(w.name, None, size, f"HTTP {r.status_code}: {reason}")
            try:
                opened = open_note(self.text + "\n" + data.decode("utf-8"), [w.verifier])
            except (ProvenanceError, UnicodeDecodeError) as e:
                return WitnessOutcome(w.name, None, size, f"bad cosignature response: {e}")
            return WitnessOutcome(w.name, opened.signatures[0], self.size)
        return WitnessOutcome(w.name, None, size, "witness kept answering 409 Conflict")


async def gather_cosignatures(
    checkpoint: bytes | str,
    witnesses: Sequence[WitnessEndpoint],
    known_sizes: Mapping[str, int],
    proof_provider: ProofProvider,
    *,
    timeout: float = 10.0,
    enough: Callable[[frozenset[tuple[str, int]]], bool] | None = None,
    client: httpx.AsyncClient | None = None,
    max_retries: int = 2,
) -> CosignResult:
    """Ask witnesses to cosign ``checkpoint`` (the log's signed note), concurrently.

    ``known_sizes[name]`` is the size each witness was last seen at (missing: 0, and a
    409 teaches the real one); ``proof_provider(old, new)`` supplies consistency
    proofs. Stops when every witness answered, when ``enough(cosigners)`` becomes
    true (the rest are cancelled), or at ``timeout`` seconds. Witness failures are
    reported in the outcomes, never raised; a malformed ``checkpoint`` raises
    :class:`NoteError`.
    """
    note = checkpoint.encode("utf-8") if isinstance(checkpoint, str) else bytes(checkpoint)
    parsed = parse_note(note)
    cp = parse_checkpoint(parsed.text)
    names = [w.name for w in witnesses]
    if len(set(names)) != len(names):
        raise InputError("witness names must be unique")

    cm: AbstractAsyncContextManager[httpx.AsyncClient]
    if client is None:
        # TCP_NODELAY: httpx writes headers and body separately, and Nagle's algorithm
        # would hold the body back for a delayed ACK (40 ms per request on Linux).
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        cm = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            transport=httpx.AsyncHTTPTransport(socket_options=nodelay),
        )
    else:
        cm = nullcontext(client)
    outcomes: dict[str, WitnessOutcome] = {}
    complete = enough is not None and enough(frozenset())  # e.g. "quorum none"
    async with cm as http:
        rnd = _Round(note, parsed.text, cp.size, proof_provider, http, max_retries)
        tasks = (
            {}
            if complete
            else {asyncio.create_task(rnd.cosign(w, known_sizes.get(w.name))): w for w in witnesses}
        )
        pending: set[asyncio.Task[WitnessOutcome]] = set(tasks)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while pending:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                done, pending = await asyncio.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for t in done:
                    w = tasks[t]
                    exc = t.exception()
                    outcomes[w.name] = (
                        t.result()
                        if exc is None
                        else WitnessOutcome(w.name, None, known_sizes.get(w.name), repr(exc))
                    )
                if enough is not None and enough(_cosigners(outcomes)):
                    complete = True
                    break
        finally:
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
    for w in witnesses:
        if w.name not in outcomes:
            why = "not needed: enough cosignatures" if complete else "timed out"
            outcomes[w.name] = WitnessOutcome(w.name, None, known_sizes.get(w.name), why)
    if enough is None:
        complete = all(o.cosignature is not None for o in outcomes.values())
    ordered = {w.name: outcomes[w.name] for w in witnesses}
    sigs = [o.cosignature for o in ordered.values() if o.cosignature is not None]
    signed = sign_note(parsed, [_Presigned(s) for s in sigs]) if sigs else note
    return CosignResult(signed, ordered, complete)


def _cosigners(outcomes: Mapping[str, WitnessOutcome]) -> frozenset[tuple[str, int]]:
    return frozenset(
        (o.cosignature.name, o.cosignature.key_id)
        for o in outcomes.values()
        if o.cosignature is not None
    )


def gather_cosignatures_sync(
    checkpoint: bytes | str,
    witnesses: Sequence[WitnessEndpoint],
    known_sizes: Mapping[str, int],
    proof_provider: ProofProvider,
    *,
    timeout: float = 10.0,
    enough: Callable[[frozenset[tuple[str, int]]], bool] | None = None,
    max_retries: int = 2,
) -> CosignResult:
    """:func:`gather_cosignatures` for synchronous callers (e.g. a sequencer thread).

    Called from a thread that runs an event loop, it runs the round on a helper
    thread (blocking that loop until done) rather than failing.
    """

    def run() -> CosignResult:
        return asyncio.run(
            gather_cosignatures(
                checkpoint,
                witnesses,
                known_sizes,
                proof_provider,
                timeout=timeout,
                enough=enough,
                max_retries=max_retries,
            )
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with ThreadPoolExecutor(1, thread_name_prefix="cosign") as pool:
        return pool.submit(run).result()


def tile_proof_provider(tiles: TileReader) -> Callable[[int, int], list[bytes]]:
    """Consistency proofs read from the log's own tiles (trusted storage, so the
    tiles are not re-authenticated), e.g. ``tile_proof_provider(log.tiles)``."""

    def provide(old_size: int, new_size: int) -> list[bytes]:
        return consistency_proof(old_size, new_size, TileHashReader(new_size, None, tiles))

    return provide
