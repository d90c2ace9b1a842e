"""The verdict index: SQLite tables of what the log says, per file and per package.

Built by replaying the log in order (:meth:`VerdictIndex.sync`, or
:meth:`VerdictIndex.ingest` per entry): releases and shelvings vouch for a file,
inspections record each inspector's latest result, takedowns are kept with the
restore that lifted them, developer registrations vouch for signer certificates.
Nothing here decides a verdict: lookups assemble records
(:mod:`provenance.verdicts.records`) and hand them to
:mod:`provenance.verdicts.decide` with the caller's clock. The index is therefore a
pure function of the log -- delete it and replay to get the same answers.

One writer (the syncing process), any number of readers (service workers open it
``readonly``); WAL mode lets them run side by side. Entries the index does not
understand are counted and skipped, never fatal: the log accepted them already.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from provenance.errors import InputError, ProvenanceError
from provenance.log.merkle import leaf_hash
from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    RESTORE,
    SHELVING,
    TAKEDOWN,
    Envelope,
    LogRef,
    Statement,
    validate_statement,
)
from provenance.statements.intoto import PAYLOAD_TYPE
from provenance.verdicts.decide import Decision, decide_apk, decide_package
from provenance.verdicts.inspection import finding_sentences, inspection_kind
from provenance.verdicts.model import Query, Verdict, VerdictKind
from provenance.verdicts.records import (
    ApkRecord,
    InspectionNote,
    PackageRecord,
    SignerNote,
    TakedownNote,
    Vouch,
)

__all__ = ["DEFAULT_TTL", "VerdictIndex"]

DEFAULT_TTL = timedelta(hours=1)
"""How long a verdict stays valid when nothing pending changes it sooner."""
_MAX_SIGNER_REFS = 4
_MAX_FILE_SIGNERS = 16
_KEPT = (RELEASE, SHELVING, INSPECTION, TAKEDOWN, RESTORE, DEVELOPER_REGISTRATION)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL UNIQUE, type TEXT NOT NULL,
    issued_at TEXT NOT NULL, entry BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS entries_type ON entries(type);
CREATE TABLE IF NOT EXISTS apks (
    sha256 TEXT PRIMARY KEY, package TEXT, version_code INTEGER);
CREATE INDEX IF NOT EXISTS apks_package ON apks(package, version_code);
CREATE TABLE IF NOT EXISTS apk_certs (
    sha256 TEXT NOT NULL, cert TEXT NOT NULL, PRIMARY KEY (sha256, cert)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS apk_sdks (
    sha256 TEXT NOT NULL, sdk_id TEXT NOT NULL, sdk_version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sha256, sdk_id, sdk_version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS apk_sdks_sdk ON apk_sdks(sdk_id);
CREATE TABLE IF NOT EXISTS vouches (
    sha256 TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
    detail TEXT NOT NULL, PRIMARY KEY (sha256, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inspections (
    sha256 TEXT NOT NULL, inspector TEXT NOT NULL, idx INTEGER NOT NULL,
    result TEXT NOT NULL, kind TEXT, findings TEXT NOT NULL,
    PRIMARY KEY (sha256, inspector)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS takedowns (
    idx INTEGER PRIMARY KEY, scope TEXT NOT NULL, package TEXT, apk_sha256 TEXT,
    sdk_id TEXT, sdk_version TEXT, authority TEXT NOT NULL, code TEXT NOT NULL,
    text TEXT NOT NULL, effective_at TEXT NOT NULL, lifted_at TEXT, lift_idx INTEGER);
CREATE INDEX IF NOT EXISTS takedowns_package ON takedowns(package);
CREATE INDEX IF NOT EXISTS takedowns_apk ON takedowns(apk_sha256);
CREATE INDEX IF NOT EXISTS takedowns_sdk ON takedowns(sdk_id);
CREATE TABLE IF NOT EXISTS dev_certs (
    cert TEXT NOT NULL, package TEXT NOT NULL, idx INTEGER NOT NULL, developer TEXT NOT NULL,
    verified_by TEXT NOT NULL, PRIMARY KEY (package, cert, idx)) WITHOUT ROWID;
"""


def _time(text: str) -> datetime:
    """A stored ``YYYY-MM-DDTHH:MM:SSZ`` (validated on ingest), parsed fast."""
    return datetime.fromisoformat(text)


def _release_certs(entry: bytes) -> tuple[str, ...]:
    """The signer certificates a logged (and, on ingest, validated) release names."""
    predicate = Statement.from_json(Envelope.from_json(entry).payload).predicate
    return tuple(str(c) for c in predicate["signer_certificates"])


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class VerdictIndex:
    """SQLite-backed facts about files and packages, with verdict lookups.

    Thread-safe: each thread gets its own connection (SQLite connections are not
    shared); writes are serialized by SQLite.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        if readonly and not self.path.exists():
            raise InputError(f"verdict index {self.path} does not exist")
        conn = self._conn()
        if not readonly:
            conn.executescript(_SCHEMA)
        self._origin_cache: str | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> VerdictIndex:
        """Open (creating if needed, unless ``readonly``) the index at ``path``."""
        try:
            return cls(path, readonly=readonly)
        except sqlite3.Error as e:
            raise InputError(f"cannot open verdict index {path}: {e}") from None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(self.path, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA query_only=" + ("ON" if self.readonly else "OFF"))
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> VerdictIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    def _meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    @property
    def origin(self) -> str:
        """The origin of the log the index was built from ("" before the first entry)."""
        if self._origin_cache is None:
            self._origin_cache = self._meta("origin") or ""
        return self._origin_cache

    @property
    def size(self) -> int:
        """How many log entries have been replayed (the next index to ingest)."""
        return int(self._meta("size") or 0)

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap; for response caches)."""
        row = self._conn().execute("PRAGMA data_version").fetchone()
        return int(row[0])

    # ----------------------------------------------------------------- ingest

    def sync(self, log: Any, *, batch: int = 256) -> int:
        """Replay the entries of ``log`` (a :class:`provenance.log.log.Log`) not yet seen.

        Returns the number of entries read. Reads whole entry bundles, so a sync of
        a large log costs one file read per 256 entries.
        """
        from provenance.log.tiles import TILE_WIDTH, Tile

        self.bind_origin(log.origin)
        size = log.tree().size
        start = self.size
        done = 0
        while start < size:
            n = start // TILE_WIDTH
            width = min(TILE_WIDTH, size - n * TILE_WIDTH)
            bundle = log.tiles.read_entries(Tile(0, n, width))
            first = n * TILE_WIDTH
            self.ingest_many((first + i, e) for i, e in enumerate(bundle) if first + i >= start)
            done += first + len(bundle) - start
            start = first + len(bundle)
        return done

    def bind_origin(self, origin: str) -> None:
        """Record which log the index replays (refs without ``log`` are to it); an
        index bound to one log refuses another."""
        current = self._meta("origin")
        if current is None:
            with self._conn() as conn:
                conn.execute("INSERT INTO meta VALUES ('origin', ?)", (origin,))
            self._origin_cache = origin
        elif current != origin:
            raise InputError(
                f"verdict index {self.path} was built from the log {current!r}, not {origin!r}"
            )

    def ingest(self, index: int, entry: bytes) -> bool:
        """Replay one log entry; returns whether it changed any facts."""
        return self.ingest_many([(index, entry)]) > 0

    def ingest_many(self, entries: Iterable[tuple[int, bytes]], *, contiguous: bool = True) -> int:
        """Replay entries in log order in one transaction; returns how many were used.

        ``contiguous=False`` accepts gaps (a terminal replays only the entries a feed
        record cites, to recompute that record from verified entries alone).
        """
        used = 0
        conn = self._conn()
        with conn:
            size = int(self._meta("size") or 0)
            for index, entry in entries:
                if index < size:
                    continue  # replayed before
                if index != size and contiguous:
                    raise InputError(f"verdict index expects log entry {size}, got {index}")
                if self._apply(conn, index, entry):
                    used += 1
                size = index + 1
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('size', ?)", (str(size),))
        return used

    def _apply(self, conn: sqlite3.Connection, idx: int, entry: bytes) -> bool:
        try:
            env = Envelope.from_json(entry)
            if env.payload_type != PAYLOAD_TYPE:
                return False
            statement = Statement.from_json(env.payload)
            if statement.predicate_type not in (*_KEPT, ACTOR_REGISTRATION):
                return False
            validate_statement(statement)
        except ProvenanceError:
            skipped = int(self._meta("skipped") or 0) + 1
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('skipped', ?)", (str(skipped),))
            return False
        p = statement.predicate
        ptype = statement.predicate_type
        conn.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
            (idx, leaf_hash(entry), ptype, p["issued_at"], entry),
        )
        if ptype in (RELEASE, SHELVING):
            sha = p["apk"]["sha256"]
            self._apk(conn, sha, p["package"], p["version_code"])
            if ptype == RELEASE:
                conn.executemany(
                    "INSERT OR IGNORE INTO apk_certs VALUES (?, ?)",
                    [(sha, c) for c in p["signer_certificates"]],
                )
                detail = p.get("version_name", "")
                actor = p["developer"]
            else:
                detail = p["listing"]["id"]
                actor = p["platform"]
                conn.executemany(
                    "INSERT OR IGNORE INTO apk_sdks VALUES (?, ?, ?)",
                    [(sha, s["id"], s.get("version", "")) for s in p["metadata"]["sdks"]],
                )
            conn.execute(
                "INSERT INTO vouches VALUES (?, ?, ?, ?, ?)",
                (sha, idx, "release" if ptype == RELEASE else "shelving", actor, detail),
            )
        elif ptype == INSPECTION:
            sha = p["apk"]["sha256"]
            self._apk(conn, sha, p["package"], None)
            kind = inspection_kind(p)
            conn.execute(
                "INSERT OR REPLACE INTO inspections VALUES (?, ?, ?, ?, ?, ?)",
                (
                    sha,
                    p["inspector"],
                    idx,
                    p["verdict"],
                    kind.value if kind else None,
                    json.dumps(list(finding_sentences(p))),
                ),
            )
        elif ptype == TAKEDOWN:
            s = p["scope"]
            if s["kind"] == "version":
                self._apk(conn, s["apk_sha256"], s["package"], s.get("version_code"))
            conn.execute(
                "INSERT INTO takedowns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    idx,
                    s["kind"],
                    s.get("package"),
                    s.get("apk_sha256"),
                    s.get("sdk_id"),
                    s.get("sdk_version"),
                    p["authority"],
                    p["reason"]["code"],
                    p["reason"]["text"],
                    p["effective_at"],
                ),
            )
        elif ptype == RESTORE:
            self._restore(conn, idx, p)
        elif ptype == DEVELOPER_REGISTRATION:
            conn.executemany(
                "INSERT OR IGNORE INTO dev_certs VALUES (?, ?, ?, ?, ?)",
                [  # package "" : a certificate registered without naming its packages
                    (c["sha256"], pkg, idx, p["developer"], p["verified_by"])
                    for c in p["signer_certificates"]
                    for pkg in c.get("packages") or ("",)
                ],
            )
        return True

    @staticmethod
    def _apk(conn: sqlite3.Connection, sha: str, package: str, version_code: int | None) -> None:
        conn.execute(
            "INSERT INTO apks VALUES (?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET "
            "package = coalesce(apks.package, excluded.package), "
            "version_code = coalesce(apks.version_code, excluded.version_code)",
            (sha, package, version_code),
        )

    @staticmethod
    def _restore(conn: sqlite3.Connection, idx: int, p: dict[str, Any]) -> None:
        """Lift the takedown the restore names (by leaf hash), or, if the index never
        saw it, every unlifted takedown with exactly the same scope."""
        ref = LogRef.from_dict(p["takedown"])
        s = p["scope"]
        target = conn.execute(
            "SELECT t.idx FROM takedowns t JOIN entries e ON e.idx = t.idx "
            "WHERE e.leaf_hash = ? AND t.lifted_at IS NULL",
            (ref.leaf_hash,),
        ).fetchall()
        if not target and ref.log is None:
            target = conn.execute(
                "SELECT idx FROM takedowns WHERE lifted_at IS NULL AND scope = ? "
                "AND package IS ? AND apk_sha256 IS ? AND sdk_id IS ? AND sdk_version IS ?",
                (
                    s["kind"],
                    s.get("package"),
                    s.get("apk_sha256"),
                    s.get("sdk_id"),
                    s.get("sdk_version"),
                ),
            ).fetchall()
        conn.executemany(
            "UPDATE takedowns SET lifted_at = ?, lift_idx = ? WHERE idx = ?",
            [(p["effective_at"], idx, t[0]) for t in target],
        )

    # ----------------------------------------------------------------- lookup

    def _ref(self, conn: sqlite3.Connection, idx: int) -> LogRef:
        row = conn.execute("SELECT leaf_hash FROM entries WHERE idx = ?", (idx,)).fetchone()
        return LogRef(idx, bytes(row[0]))

    def _takedowns(
        self, conn: sqlite3.Connection, where: str, args: tuple[Any, ...]
    ) -> tuple[TakedownNote, ...]:
        rows = conn.execute(
            "SELECT t.idx, t.scope, t.package, t.apk_sha256, t.sdk_id, t.sdk_version, "
            "t.authority, t.code, t.text, t.effective_at, t.lifted_at, t.lift_idx, e.leaf_hash, "
            "l.leaf_hash FROM takedowns t JOIN entries e ON e.idx = t.idx "
            f"LEFT JOIN entries l ON l.idx = t.lift_idx WHERE {where} ORDER BY t.idx",
            args,
        ).fetchall()
        out = []
        for r in rows:
            if r[1] == "sdk":
                target = str(r[4]) + (f"@{r[5]}" if r[5] else "")
            else:
                target = str(r[2] if r[1] == "app" else r[3])
            out.append(
                TakedownNote(
                    r[1],
                    target,
                    r[6],
                    r[7],
                    r[8],
                    _time(r[9]),
                    LogRef(r[0], bytes(r[12])),
                    _time(r[10]) if r[10] else None,
                    LogRef(r[11], bytes(r[13])) if r[11] is not None else None,
                )
            )
        return tuple(out)

    def apk_record(self, sha256: str) -> ApkRecord | None:
        """What the log says about the file with this SHA-256, or None."""
        conn = self._conn()
        row = conn.execute(
            "SELECT package, version_code FROM apks WHERE sha256 = ?", (sha256,)
        ).fetchone()
        if row is None:
            return None
        package, version_code = row
        certs = tuple(
            r[0]
            for r in conn.execute(
                "SELECT cert FROM apk_certs WHERE sha256 = ? ORDER BY cert", (sha256,)
            )
        )
        vouches = tuple(
            Vouch(
                r[0],
                r[1],
                _time(r[3]),
                LogRef(r[5], bytes(r[4])),
                r[2],
                _release_certs(bytes(r[6])) if r[0] == "release" else (),
            )
            for r in conn.execute(
                "SELECT v.kind, v.actor, v.detail, e.issued_at, e.leaf_hash, v.idx, e.entry "
                "FROM vouches v JOIN entries e ON e.idx = v.idx WHERE v.sha256 = ? "
                "ORDER BY v.idx",
                (sha256,),
            )
        )
        inspections = tuple(
            InspectionNote(
                r[0],
                r[1],
                VerdictKind(r[2]) if r[2] else None,
                tuple(json.loads(r[3])),
                _time(r[4]),
                LogRef(r[6], bytes(r[5])),
            )
            for r in conn.execute(
                "SELECT i.inspector, i.result, i.kind, i.findings, e.issued_at, e.leaf_hash, "
                "i.idx FROM inspections i JOIN entries e ON e.idx = i.idx "
                "WHERE i.sha256 = ? ORDER BY i.idx",
                (sha256,),
            )
        )
        takedowns = self._takedowns(
            conn,
            "(t.scope = 'version' AND t.apk_sha256 = ?) OR (t.scope = 'app' AND t.package = ?) "
            "OR (t.scope = 'sdk' AND EXISTS (SELECT 1 FROM apk_sdks s WHERE s.sha256 = ? "
            "AND s.sdk_id = t.sdk_id "
            "AND (t.sdk_version IS NULL OR s.sdk_version = t.sdk_version)))",
            (sha256, package, sha256),
        )
        signers = self._file_signers(conn, package, vouches) if package is not None else ()
        return ApkRecord(
            sha256, package, version_code, certs, vouches, inspections, takedowns, signers
        )

    @staticmethod
    def _registered(
        conn: sqlite3.Connection, package: str
    ) -> tuple[bool, dict[tuple[str, str], list[tuple[int, str, bytes]]]]:
        """The developer registrations that can make a certificate an allowed signer of
        ``package``, per (certificate, developer), newest first; and whether any names
        the package (if none does, those naming no packages, for certificates seen on
        the package's releases)."""
        registered: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}
        query = (
            "SELECT d.cert, d.developer, d.idx, d.verified_by, e.leaf_hash "
            "FROM dev_certs d JOIN entries e ON e.idx = d.idx WHERE d.package = ? {} "
            "ORDER BY d.idx DESC"
        )
        rows = conn.execute(query.format(""), (package,)).fetchall()
        named = bool(rows)
        if not named:  # nobody named the package: the certificates registered for none
            rows = conn.execute(
                query.format(
                    "AND d.cert IN (SELECT c.cert FROM apks a JOIN apk_certs c "
                    "ON c.sha256 = a.sha256 WHERE a.package = ?)"
                ),
                ("", package),
            ).fetchall()
        for cert, developer, idx, verified_by, leaf in rows:
            registered.setdefault((cert, developer), []).append((idx, verified_by, bytes(leaf)))
        return named, registered

    def _file_signers(
        self, conn: sqlite3.Connection, package: str, vouches: tuple[Vouch, ...]
    ) -> tuple[SignerNote, ...]:
        """The allowed signers of ``package``, for a file's record: the (certificate,
        developer) pairs the registrations establish, as in :meth:`package_record`
        (when no registration names the package, only developers who released it with
        that certificate count). Each cites its newest registration, and for a
        registration naming no packages also that release, so that a terminal
        replaying the cited entries alone finds the same pairs. The pairs of the
        file's own releases come first; at most :data:`_MAX_FILE_SIGNERS` pairs."""
        named, registered = self._registered(conn, package)
        pairs: dict[tuple[str, str], list[LogRef]] = {}
        for (cert, developer), regs in registered.items():
            idx, _, leaf = regs[0]
            pairs[(cert, developer)] = [LogRef(idx, leaf)]
        if not named and pairs:  # only developers who released the package with the cert
            released: dict[tuple[str, str], LogRef] = {}
            for actor, idx, leaf, entry in conn.execute(
                "SELECT v.actor, v.idx, e.leaf_hash, e.entry FROM apks a "
                "JOIN vouches v ON v.sha256 = a.sha256 AND v.kind = 'release' "
                "JOIN entries e ON e.idx = v.idx WHERE a.package = ? ORDER BY v.idx DESC",
                (package,),
            ):
                for cert in _release_certs(bytes(entry)):
                    if (cert, actor) in pairs:
                        released.setdefault((cert, actor), LogRef(idx, bytes(leaf)))
            pairs = {k: [*refs, released[k]] for k, refs in pairs.items() if k in released}
        own = {(c, v.actor) for v in vouches if v.kind == "release" for c in v.certs}
        chosen = sorted(pairs, key=lambda k: (k not in own, -pairs[k][0].index))
        notes: dict[str, dict[str, Any]] = {}
        for cert, developer in chosen[:_MAX_FILE_SIGNERS]:
            n = notes.setdefault(cert, {"refs": [], "sources": [], "developers": []})
            n["developers"].append(developer)
            n["refs"].extend(r for r in pairs[(cert, developer)] if r not in n["refs"])
            for _, verified_by, _ in registered[(cert, developer)][:1]:
                n["sources"].append(f"{developer}, registered by {verified_by}")
        return tuple(
            SignerNote(cert, {}, tuple(n["refs"]), tuple(n["sources"]), tuple(n["developers"]))
            for cert, n in sorted(notes.items())
        )

    def package_record(self, package: str) -> PackageRecord | None:
        """What the log says about a package: its allowed signers and app takedowns.

        A certificate is an allowed signer of ``package`` only if a developer
        registration (signed by the verifying platform or regulator) registers it to
        a developer for that package, and it vouches only for that developer's
        releases: a developer registration that lists the certificate with
        ``packages`` naming the package, or -- when no registration names the
        package at all -- one that lists the certificate without naming packages.
        A release by a developer whose registration does not cover the package, or
        signed with a certificate the developer did not register, vouches for
        nothing here (the file itself is still described by its APK record).
        """
        conn = self._conn()
        named, registered = self._registered(conn, package)
        signers: dict[str, dict[str, Any]] = {}

        def note(cert: str) -> dict[str, Any]:
            return signers.setdefault(
                cert, {"versions": {}, "refs": [], "sources": [], "developers": []}
            )

        files = conn.execute(
            "SELECT c.cert, a.version_code, a.sha256, v.idx, v.kind, v.actor, e.leaf_hash "
            "FROM apks a JOIN apk_certs c ON c.sha256 = a.sha256 "
            "JOIN vouches v ON v.sha256 = a.sha256 JOIN entries e ON e.idx = v.idx "
            "WHERE a.package = ? ORDER BY v.idx DESC",
            (package,),
        ).fetchall()
        allowed = {cert for cert, _ in registered}
        released: set[tuple[str, str]] = set()
        for cert, vc, sha, idx, kind, actor, leaf in files:
            if cert not in allowed:
                continue  # nobody registered this certificate for the package
            if kind == "release" and (cert, actor) not in registered:
                continue  # released by a developer the certificate is not registered to
            if kind == "release":
                released.add((cert, actor))
            n = note(cert)
            if vc is not None and sha not in n["versions"].setdefault(vc, []):
                n["versions"][vc].append(sha)
            if kind == "release" and len(n["refs"]) < _MAX_SIGNER_REFS:
                n["refs"].append(LogRef(idx, leaf))
            src = f"{kind} by {actor}"
            if src not in n["sources"]:
                n["sources"].append(src)
        for (cert, developer), regs in sorted(
            registered.items(), key=lambda item: -max(r[0] for r in item[1])
        ):
            if not named and (cert, developer) not in released:
                continue  # registered for no package, and never released this one
            n = note(cert)
            if developer not in n["developers"]:
                n["developers"].append(developer)
            for idx, verified_by, leaf in regs:
                if len(n["refs"]) < _MAX_SIGNER_REFS + 1:
                    n["refs"].append(LogRef(idx, leaf))
                src = f"{developer}, registered by {verified_by}"
                if src not in n["sources"]:
                    n["sources"].append(src)
        takedowns = self._takedowns(conn, "t.scope = 'app' AND t.package = ?", (package,))
        if not signers and not takedowns:
            known = conn.execute("SELECT 1 FROM apks WHERE package = ? LIMIT 1", (package,))
            if known.fetchone() is None:
                return None
        return PackageRecord(
            package,
            tuple(
                SignerNote(
                    cert,
                    {vc: tuple(shas) for vc, shas in n["versions"].items()},
                    tuple(n["refs"]),
                    tuple(n["sources"]),
                    tuple(n["developers"]),
                )
                for cert, n in sorted(signers.items())
            ),
            takedowns,
        )

    def decide(self, query: Query, now: datetime | None = None) -> Decision:
        """The decision for ``query`` at ``now`` (default: the current time)."""
        now = now or _now()
        if query.apk_sha256 is not None:
            return decide_apk(self.apk_record(query.apk_sha256), now)
        assert query.package is not None
        record = self.package_record(query.package)
        files: dict[str, Decision] = {}
        if record is not None and query.version_code is not None and query.cert_sha256:
            signer = record.signer(query.cert_sha256)
            for sha in signer.versions.get(query.version_code, ()) if signer else ():
                files[sha] = decide_apk(self.apk_record(sha), now)
        return decide_package(record, query, now, files)

    def lookup(
        self, query: Query, now: datetime | None = None, *, ttl: timedelta = DEFAULT_TTL
    ) -> Verdict:
        """The (unsigned) verdict record answering ``query``, valid for ``ttl`` at most."""
        now = now or _now()
        d = self.decide(query, now)
        expires = now + ttl
        if d.changes_at is not None and now < d.changes_at < expires:
            expires = d.changes_at
        return Verdict(
            query, d.kind, d.reasons, d.evidence, now, expires, self.origin, self.size, d.subject
        )

    # ------------------------------------------------------------- for the feed

    def apks(self) -> Iterator[str]:
        """Every file SHA-256 the index knows, in order."""
        for (sha,) in self._conn().execute("SELECT sha256 FROM apks ORDER BY sha256"):
            yield str(sha)

    def packages(self) -> Iterator[str]:
        """Every package name the index knows, in order."""
        for (p,) in self._conn().execute(
            "SELECT package FROM apks WHERE package IS NOT NULL UNION "
            "SELECT package FROM takedowns WHERE package IS NOT NULL UNION "
            "SELECT package FROM dev_certs WHERE package != '' ORDER BY 1"
        ):
            yield str(p)

    def entry(self, ref: LogRef) -> bytes | None:
        """The logged bytes a reference names (checked against its leaf hash)."""
        row = (
            self._conn()
            .execute(
                "SELECT entry FROM entries WHERE idx = ? AND leaf_hash = ?",
                (ref.index, ref.leaf_hash),
            )
            .fetchone()
        )
        return bytes(row[0]) if row else None

    def actor_registrations(self) -> list[tuple[int, bytes]]:
        """Every actor-registration entry, in log order (to rebuild the registry)."""
        return [
            (int(i), bytes(e))
            for i, e in self._conn().execute(
                "SELECT idx, entry FROM entries WHERE type = ? ORDER BY idx", (ACTOR_REGISTRATION,)
            )
        ]

    def stats(self) -> dict[str, int]:
        """Row counts, for status output."""
        conn = self._conn()
        out = {"log_size": self.size, "skipped": int(self._meta("skipped") or 0)}
        for table in ("entries", "apks", "takedowns", "inspections"):
            out[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return out
