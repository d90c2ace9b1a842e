"""A transparency log in a data folder: create, open, append, prove, verify.

The facade the CLI and the HTTP service share. A data folder holds::

    DATA/
      log.json        origin, verifier key, state backend (public facts)
      log.key         the log's Ed25519 note signing key (mode 0600; secret)
      state.db        sequencing state (SQLite, WAL; absent with PostgreSQL)
      public/         the log as the world sees it -- serve this directory:
        checkpoint
        tile/<L>/<N>[.p/<W>]
        tile/entries/<N>[.p/<W>]

Only ``public/`` is ever served, so a static file server can publish the log
without any risk of handing out the key or the state. Verification
(:func:`verify_log`) reads nothing but those public files, locally or over HTTP.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from provenance.errors import CheckFailed, InputError, ProvenanceError
from provenance.log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from provenance.log.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    leaf_hash,
    verify_consistency,
)
from provenance.log.note import (
    Ed25519Signer,
    Verifier,
    is_valid_key_name,
    parse_signer_key,
    parse_verifier_key,
)
from provenance.log.proof import TlogProof, build_tlog_proof
from provenance.log.sequencer import Cosigner, Sequencer, TreeEdge
from provenance.log.store.errors import NotFoundError
from provenance.log.store.sqlite import SQLiteState
from provenance.log.store.state import StateStore, TreeState
from provenance.log.store.tile_store import DirTileStore, TileSource
from provenance.log.tiles import TILE_WIDTH, Tile, TileHashReader, parse_tile_path

__all__ = [
    "CONFIG_FILE",
    "KEY_FILE",
    "POSTGRES_ENV",
    "PUBLIC_DIR",
    "STATE_FILE",
    "Log",
    "LogConfig",
    "LogStatus",
    "LogVerification",
    "NotInLogError",
    "verify_log",
]

CONFIG_FILE = "log.json"
KEY_FILE = "log.key"
STATE_FILE = "state.db"
PUBLIC_DIR = "public"
POSTGRES_ENV = "APKPROV_LOG_POSTGRES"
"""Environment variable with the PostgreSQL DSN, when not given explicitly."""
_FORMAT = "apkprov-log/1"


class NotInLogError(CheckFailed):
    """The entry is not in the log, or no checkpoint covers it yet."""


@dataclass(frozen=True)
class LogConfig:
    """The public facts of a log, kept in ``log.json``."""

    origin: str
    vkey: str
    state: str = "sqlite"

    def to_json(self) -> dict[str, str]:
        return {"format": _FORMAT, "origin": self.origin, "vkey": self.vkey, "state": self.state}

    @classmethod
    def load(cls, directory: Path) -> LogConfig:
        path = directory / CONFIG_FILE
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise InputError(
                f"{directory} is not a log data folder (no {CONFIG_FILE}); "
                "create one with `apkprov log init`"
            ) from None
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {path}: {e}") from None
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise InputError(f"{path} is not an {_FORMAT} configuration")
        origin, vkey, state = raw.get("origin"), raw.get("vkey"), raw.get("state", "sqlite")
        if (
            not isinstance(origin, str)
            or not isinstance(vkey, str)
            or state not in ("sqlite", "postgres")
        ):
            raise InputError(f"{path} is malformed")
        return cls(origin, vkey, state)


@dataclass(frozen=True)
class LogStatus:
    """Where a log stands."""

    directory: str
    origin: str
    vkey: str
    state: str
    size: int
    root_hash: bytes
    sequenced: int
    checkpoint: str

    @property
    def pending(self) -> int:
        """Entries with an index that no checkpoint covers yet."""
        return self.sequenced - self.size

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "origin": self.origin,
            "vkey": self.vkey,
            "state": self.state,
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "sequenced": self.sequenced,
            "pending": self.pending,
            "checkpoint": self.checkpoint,
        }


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never overwrite) with ``mode`` from the first byte, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _postgres_dsn(postgres: str | None) -> str | None:
    return postgres or os.environ.get(POSTGRES_ENV) or None


def _open_state(directory: Path, kind: str, postgres: str | None) -> StateStore:
    dsn = _postgres_dsn(postgres)
    if kind == "postgres":
        if dsn is None:
            raise InputError(
                f"this log keeps its state in PostgreSQL: pass --postgres or set {POSTGRES_ENV}"
            )
        from provenance.log.store.postgres import PostgresState

        return PostgresState(dsn)
    if postgres:
        raise InputError("this log keeps its state in SQLite (state.db); --postgres does not apply")
    return SQLiteState(directory / STATE_FILE)


class Log:
    """A log in a data folder: its stores, its key, and a sequencer on demand.

    ``Log.open`` takes keyword options for the :class:`Sequencer` (batching,
    ``cosigner`` for witnesses); the private key is read only when something
    appends. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        tiles: DirTileStore,
        state: StateStore,
        sequencer_options: dict[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.config = config
        self.tiles = tiles
        self.state = state
        self._options = dict(sequencer_options or {})
        self._sequencer: Sequencer | None = None
        self._readers = threading.local()  # a tile cache per thread: readers are not shared
        self.verifier: Verifier = parse_verifier_key(config.vkey)

    @property
    def origin(self) -> str:
        return self.config.origin

    @property
    def public_dir(self) -> Path:
        """The directory to serve (checkpoint and tiles)."""
        return self.directory / PUBLIC_DIR

    # -------------------------------------------------------------- lifecycle

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        origin: str,
        *,
        postgres: str | None = None,
        fsync: bool = True,
    ) -> Log:
        """Initialize a new log: key, state, and the signed checkpoint of size 0.

        The key name is the origin (as the checkpoint spec recommends), so the
        origin must be a valid key name: no spaces and no ``+``.
        """
        d = Path(directory)
        if not origin or not is_valid_key_name(origin):
            raise InputError(
                f"origin {origin!r} cannot name the log's key: use a scheme-less URL "
                "without spaces or '+', such as example.com/log"
            )
        if (d / CONFIG_FILE).exists():
            raise InputError(f"{d} already holds a log ({CONFIG_FILE} exists)")
        if (d / KEY_FILE).exists():
            raise InputError(f"{d / KEY_FILE} exists: an earlier init did not finish; remove it")
        dsn = _postgres_dsn(postgres)
        kind = "postgres" if dsn else "sqlite"
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / PUBLIC_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create {d}: {e.strerror or e}") from None
        signer = Ed25519Signer.generate(origin)
        _write_private(d / KEY_FILE, (signer.skey + "\n").encode(), 0o600)
        state = _open_state(d, kind, dsn)
        try:
            if state.origin() is not None:
                raise InputError(f"{state!r} already holds the log {state.origin()!r}")
            note = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), [signer])
            state.initialize(origin, note, EMPTY_ROOT)
            tiles = DirTileStore(d / PUBLIC_DIR, fsync=fsync)
            tiles.write_checkpoint(note)
            config = LogConfig(origin, signer.vkey, kind)
            _write_atomic(d / CONFIG_FILE, (json.dumps(config.to_json(), indent=2) + "\n").encode())
        except BaseException:
            state.close()
            raise
        log = cls(d, config, tiles, state)
        log._signer = signer
        return log

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        postgres: str | None = None,
        fsync: bool = True,
        cosigner: Cosigner | None = None,
        **sequencer_options: Any,
    ) -> Log:
        """Open an existing log; ``postgres`` (or ``$APKPROV_LOG_POSTGRES``) is the DSN
        for logs created with PostgreSQL state."""
        d = Path(directory)
        config = LogConfig.load(d)
        state = _open_state(d, config.state, postgres)
        try:
            stored = state.origin()
            if stored != config.origin:
                raise InputError(
                    f"{state!r} holds the log {stored!r}, but {d} is the log {config.origin!r}"
                )
        except BaseException:
            state.close()
            raise
        tiles = DirTileStore(d / PUBLIC_DIR, fsync=fsync)
        if cosigner is not None:
            sequencer_options["cosigner"] = cosigner
        return cls(d, config, tiles, state, sequencer_options)

    _signer: Ed25519Signer | None = None

    def signer(self) -> Ed25519Signer:
        """The log's signing key, read from ``log.key`` (which must be private)."""
        if self._signer is None:
            path = self.directory / KEY_FILE
            try:
                st = path.stat()
                if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise InputError(
                        f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                        f"run chmod 600 {path}"
                    )
                text = path.read_text("ascii").strip()
            except OSError as e:
                raise InputError(f"cannot read the log key {path}: {e.strerror or e}") from None
            except UnicodeDecodeError:
                raise InputError(f"{path} is not a note signing key") from None
            signer = parse_signer_key(text)
            if not isinstance(signer, Ed25519Signer) or signer.vkey != self.config.vkey:
                raise InputError(f"{path} is not the key of {self.config.vkey}")
            self._signer = signer
        return self._signer

    @property
    def sequencer(self) -> Sequencer:
        """The log's sequencer (created on first use, with the options given to open)."""
        if self._sequencer is None:
            self._sequencer = Sequencer(
                self.tiles, self.state, self.signer(), self.origin, **self._options
            )
        return self._sequencer

    def close(self, *, integrate: bool = True) -> None:
        """Stop the sequencer (integrating what it sequenced, by default) and close."""
        try:
            if self._sequencer is not None:
                self._sequencer.close(integrate=integrate)
        finally:
            self.tiles.close()
            self.state.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(integrate=exc_type is None)

    # ------------------------------------------------------------------- reads

    def tree(self) -> TreeState:
        """The integrated tree and its signed checkpoint."""
        return self.state.tree()

    def checkpoint(self) -> bytes:
        """The latest signed (and cosigned) checkpoint."""
        return self.state.tree().checkpoint

    def status(self) -> LogStatus:
        tree = self.state.tree()
        return LogStatus(
            str(self.directory),
            self.origin,
            self.config.vkey,
            self.config.state,
            tree.size,
            tree.root_hash,
            self.state.sequenced_size(),
            tree.checkpoint.decode("utf-8", "replace"),
        )

    def find(self, entry: bytes) -> int | None:
        """The index of ``entry``, if it was ever appended."""
        return self.state.lookup([leaf_hash(entry)]).get(leaf_hash(entry))

    def entry(self, index: int) -> bytes:
        """The entry at ``index`` (read from its entry bundle)."""
        tree = self.state.tree()
        self._check_covered(index, tree)
        n = index // TILE_WIDTH
        width = min(TILE_WIDTH, tree.size - n * TILE_WIDTH)
        return self.tiles.read_entries(Tile(0, n, width))[index % TILE_WIDTH]

    def hash_reader(self, size: int | None = None) -> TileHashReader:
        """A ``HashReader`` over this log's own tiles for the tree of ``size`` leaves
        (default: the integrated size). Trusted: the tiles are not re-authenticated.

        The reader caches tiles; it belongs to the calling thread (one per thread)."""
        if size is None:
            size = self.state.tree().size
        reader: TileHashReader | None = getattr(self._readers, "reader", None)
        if reader is None or reader.tree_size != size:
            reader = TileHashReader(size, None, self.tiles, cache_tiles=512)
            self._readers.reader = reader
        return reader

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof between two tree sizes (witnesses need these)."""
        if new_size is None:
            new_size = self.state.tree().size
        return consistency_proof(old_size, new_size, self.hash_reader(new_size))

    def _check_covered(self, index: int, tree: TreeState) -> None:
        if not isinstance(index, int) or index < 0:
            raise InputError(f"entry index must be a non-negative integer, not {index!r}")
        if index >= tree.size:
            sequenced = self.state.sequenced_size()
            if index < sequenced:
                raise NotInLogError(
                    f"entry {index} is sequenced but no checkpoint covers it yet "
                    f"(tree size {tree.size}); run `apkprov log append` to integrate"
                )
            raise NotInLogError(f"there is no entry {index}: the log has {sequenced} entries")

    def prove(self, index: int, *, extra: bytes | None = None) -> TlogProof:
        """The tlog-proof@v1 for entry ``index`` against the latest checkpoint."""
        for attempt in range(3):
            tree = self.state.tree()
            self._check_covered(index, tree)
            try:
                return build_tlog_proof(
                    index, tree.checkpoint, self.hash_reader(tree.size), extra=extra
                )
            except NotFoundError:
                # A newer integration removed a partial tile between our reads.
                self._readers.reader = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


# ----------------------------------------------------------------- verification


@dataclass
class LogVerification:
    """What :func:`verify_log` checked, and what failed (empty ``problems``: verified)."""

    checkpoint: Checkpoint | None = None
    entries: int = 0
    tiles: int = 0
    old_size: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "verified": self.ok,
            "origin": cp.origin if cp else None,
            "size": cp.size if cp else None,
            "root_hash": cp.root_hash.hex() if cp else None,
            "entries_checked": self.entries,
            "tiles_checked": self.tiles,
            "consistent_with_size": self.old_size if self.ok else None,
            "problems": self.problems,
        }


def verify_log(
    source: TileSource,
    verifier: Verifier,
    *,
    old_checkpoint: bytes | None = None,
    origin: str | None = None,
    threads: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> LogVerification:
    """Verify a whole log from its public files, trusting only ``verifier``.

    Checks the checkpoint's signature, rebuilds the tree from every entry bundle
    and compares each tile the log serves and the root hash; with
    ``old_checkpoint`` (a signed checkpoint seen earlier) also that the log is
    consistent with it. Memory stays flat (one tile per level). Problems are
    returned, not raised; a malformed ``old_checkpoint`` raises ``InputError``.
    """
    result = LogVerification()
    try:
        note = source.read_checkpoint()
    except ProvenanceError as e:
        result.problems.append(f"cannot read the checkpoint: {e}")
        return result
    if note is None:
        result.problems.append("the log has no checkpoint")
        return result
    try:
        signed = open_checkpoint(note, [verifier], origin=origin)
    except ProvenanceError as e:
        result.problems.append(f"checkpoint does not verify: {e}")
        return result
    cp = result.checkpoint = signed.checkpoint
    try:
        _rebuild(source, cp, result, threads, progress)
    except ProvenanceError as e:
        result.problems.append(str(e))
    if old_checkpoint is not None:
        _check_old(source, cp, old_checkpoint, verifier, result)
    return result


def _rebuild(
    source: TileSource,
    cp: Checkpoint,
    result: LogVerification,
    threads: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Recompute the tree from the entry bundles, comparing every served tile."""
    edge = TreeEdge()
    bundles = -(-cp.size // TILE_WIDTH)

    def fetch(n: int) -> tuple[list[bytes], bytes]:
        width = min(TILE_WIDTH, cp.size - n * TILE_WIDTH)
        tile = Tile(0, n, width)
        return source.read_entries(tile), source.read_tile(tile)

    window = max(1, threads) * 4
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="tlog-verify") as pool:
        for start in range(0, bundles, window):
            batch = range(start, min(bundles, start + window))
            for n, (entries, level0) in zip(batch, pool.map(fetch, batch), strict=True):
                files = edge.extend(entries)
                result.entries += len(entries)
                for path, data in sorted(files.items()):
                    if path.startswith("tile/entries/"):
                        continue  # re-encoded from what was read: nothing to compare
                    tile = parse_tile_path(path)
                    served = level0 if tile == Tile(0, n) else source.read_tile(tile)
                    if served != data:
                        raise CheckFailed(f"{path} does not match the entries below it")
                    result.tiles += 1
            if progress is not None:
                progress(result.entries, cp.size)
    for path, data in sorted(edge.partial_files().items()):
        if path.startswith("tile/entries/"):
            continue
        if source.read_tile(parse_tile_path(path)) != data:
            raise CheckFailed(f"{path} does not match the entries below it")
        result.tiles += 1
    if edge.root_hash() != cp.root_hash:
        raise CheckFailed(
            f"the root hash of the tiles, {edge.root_hash().hex()}, is not the checkpoint's "
            f"{cp.root_hash.hex()}"
        )


def _check_old(
    source: TileSource,
    cp: Checkpoint,
    old_note: bytes,
    verifier: Verifier,
    result: LogVerification,
) -> None:
    try:
        old = open_checkpoint(old_note, [verifier]).checkpoint
    except CheckFailed as e:
        result.problems.append(f"old checkpoint does not verify: {e}")
        return
    except ProvenanceError as e:
        raise InputError(f"old checkpoint: {e}") from None
    if old.origin != cp.origin:
        result.problems.append(f"old checkpoint is for origin {old.origin!r}, not {cp.origin!r}")
        return
    try:
        if old.size > cp.size:
            raise CheckFailed(
                f"old checkpoint has size {old.size}, larger than the log's {cp.size}: "
                "the log went back in time"
            )
        if old.size == 0:
            if old.root_hash != EMPTY_ROOT:
                raise CheckFailed("old checkpoint of size 0 does not have the empty root")
        elif old.size == cp.size:
            if old.root_hash != cp.root_hash:
                raise CheckFailed(f"two different root hashes for tree size {cp.size}: a fork")
        else:
            reader = TileHashReader(cp.size, cp.root_hash, source)
            proof = consistency_proof(old.size, cp.size, reader)
            verify_consistency(old.size, cp.size, proof, old.root_hash, cp.root_hash)
    except ProvenanceError as e:
        result.problems.append(f"not consistent with the old checkpoint: {e}")
        return
    result.old_size = old.size
