"""The public half of a log: checkpoint, tiles and entry bundles, by tlog-tiles path.

A :class:`TileSource` reads them (a directory, or HTTP for a remote log) and a
:class:`TileStore` also writes them. Paths are the exact tlog-tiles resource names
(``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``), so a
directory written by :class:`DirTileStore` can be served by any static file server,
and a server can hand request paths to :meth:`TileSource.read` unchanged: every path
is checked to be one of those names in canonical spelling before it touches storage.

Writes are atomic and durable (temporary file, fsync, rename, fsync of the
directory): the sequencer writes tiles before it records a new tree size and only
then publishes the checkpoint, so after any crash every checkpoint the log ever
recorded has all its tiles on disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Lock
from types import TracebackType
from typing import TypeVar

from provenance.log.merkle import HASH_SIZE
from provenance.log.note import MAX_NOTE_SIZE
from provenance.log.store.errors import NotFoundError, StoreError
from provenance.log.tiles import (
    MAX_ENTRY_SIZE,
    TILE_WIDTH,
    Tile,
    TileError,
    format_entry_bundle,
    parse_entries_path,
    parse_entry_bundle,
    parse_tile_path,
)

__all__ = [
    "CHECKPOINT_PATH",
    "MAX_BUNDLE_SIZE",
    "DirTileStore",
    "TileSource",
    "TileStore",
    "check_path",
    "max_size",
]

_T = TypeVar("_T")

CHECKPOINT_PATH = "checkpoint"
MAX_BUNDLE_SIZE = TILE_WIDTH * (2 + MAX_ENTRY_SIZE)
"""Largest possible entry bundle: 256 entries of 65,535 bytes with their lengths."""


def check_path(path: str) -> str:
    """Return ``path`` if it is a resource of a tlog-tiles log in canonical form.

    Raises :class:`~provenance.log.tiles.TileError` otherwise, which is what keeps
    ``..``, absolute paths and other spellings of the same tile out of the store.
    """
    if path == CHECKPOINT_PATH:
        return path
    if isinstance(path, str) and path.startswith("tile/entries/"):
        canonical = parse_entries_path(path).entries_path()
    else:
        canonical = parse_tile_path(path).path()
    if canonical != path:
        raise TileError(f"non-canonical tile path {path!r}")
    return path


def max_size(path: str) -> int:
    """Upper bound on the size of the resource at ``path`` (checked before reading)."""
    if path == CHECKPOINT_PATH:
        return MAX_NOTE_SIZE
    if path.startswith("tile/entries/"):
        return MAX_BUNDLE_SIZE
    return TILE_WIDTH * HASH_SIZE


class TileSource(ABC):
    """Reads a log's checkpoint, tiles and entry bundles; a
    :class:`~provenance.log.tiles.TileReader` for
    :class:`~provenance.log.tiles.TileHashReader`.

    Partial tiles and bundles that are gone (a log may delete them once the full
    tile exists, as the spec allows) are read as a prefix of the full one, so
    readers holding an older checkpoint keep working.
    """

    @abstractmethod
    def read(self, path: str) -> bytes:
        """The bytes at ``path``; :class:`NotFoundError` if absent."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources (connections, threads)."""

    def __enter__(self) -> TileSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read_checkpoint(self) -> bytes | None:
        """The published signed checkpoint, or None before the first one."""
        try:
            return self.read(CHECKPOINT_PATH)
        except NotFoundError:
            return None

    def read_tile(self, tile: Tile) -> bytes:
        """Tile data, exactly ``tile.data_size`` bytes."""
        try:
            data = self.read(tile.path())
        except NotFoundError:
            if tile.is_full:
                raise
            try:
                full = self.read(Tile(tile.level, tile.index).path())
            except NotFoundError:
                raise NotFoundError(tile.path()) from None
            data = full[: tile.data_size]
        if len(data) != tile.data_size:
            raise StoreError(f"{tile.path()} has {len(data)} bytes, expected {tile.data_size}")
        return data

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        """Several tiles, in order (the ``TileReader`` protocol)."""
        return [self.read_tile(t) for t in tiles]

    def read_entry_bundle(self, tile: Tile) -> bytes:
        """The entry bundle matching level-0 ``tile``, with exactly ``tile.width`` entries."""
        path = tile.entries_path()
        try:
            data = self.read(path)
        except NotFoundError:
            if tile.is_full:
                raise
            try:
                full = self.read(Tile(0, tile.index).entries_path())
            except NotFoundError:
                raise NotFoundError(path) from None
            return format_entry_bundle(parse_entry_bundle(full, TILE_WIDTH)[: tile.width])
        parse_entry_bundle(data, tile.width)  # the count must match the width
        return data

    def read_entries(self, tile: Tile) -> list[bytes]:
        """The entries of the bundle matching level-0 ``tile``."""
        return parse_entry_bundle(self.read_entry_bundle(tile), tile.width)


class TileStore(TileSource):
    """A :class:`TileSource` the sequencer can write to."""

    @abstractmethod
    def write_many(self, files: Mapping[str, bytes]) -> None:
        """Write each file atomically; all are durable when this returns.

        Files are not written as one transaction: after a crash some may be new and
        some old, which is harmless because tiles are immutable and written before
        the state that refers to them.
        """

    def write(self, path: str, data: bytes) -> None:
        """Write one file atomically and durably."""
        self.write_many({path: data})

    def write_checkpoint(self, note: bytes) -> None:
        """Publish the signed checkpoint."""
        self.write(CHECKPOINT_PATH, note)

    @abstractmethod
    def delete_partials(self, tile: Tile) -> None:
        """Drop the partial versions of the now-full ``tile`` (and, at level 0, of its
        entry bundle). Readers fall back to the full tile."""


class DirTileStore(TileStore):
    """Tiles as files in a directory, laid out exactly as the tlog-tiles URLs.

    ``fsync=False`` skips the flushes (for tests and throwaway logs only). Flushes of
    one batch run on a few threads, because the kernel merges concurrent fsyncs
    into one journal commit: 150 tiles cost about as much as a handful.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True, threads: int = 8):
        self.root = Path(root)
        self._fsync = fsync
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = Lock()

    def __repr__(self) -> str:
        return f"DirTileStore({str(self.root)!r})"

    def _file(self, path: str) -> Path:
        return self.root / check_path(path)

    def read(self, path: str) -> bytes:
        file = self._file(path)
        limit = max_size(path)
        try:
            with open(file, "rb") as f:
                data = f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(path) from None
        except IsADirectoryError:
            raise NotFoundError(path) from None
        except OSError as e:
            raise StoreError(f"cannot read {file}: {e.strerror or e}") from None
        if len(data) > limit:
            raise StoreError(f"{file} is larger than {limit} bytes")
        return data

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _map(self, func: Callable[[_T], None], items: Sequence[_T]) -> None:
        """Run ``func`` over ``items``, in parallel when there are several."""
        if len(items) <= 1 or self._threads == 1:
            for item in items:
                func(item)
            return
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="tile-fsync")
            pool = self._pool
        for _ in pool.map(func, items):
            pass

    def write_many(self, files: Mapping[str, bytes]) -> None:
        if not files:
            return
        targets = [(self._file(p), bytes(d)) for p, d in files.items()]
        new_dirs: set[Path] = set()
        for target, _ in targets:
            new_dirs.update(_make_dirs(target.parent, self.root))
        temps: list[tuple[Path, Path, bytes]] = []
        try:
            for target, data in targets:
                tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
                temps.append((tmp, target, data))
            self._map(self._write_temp, temps)
            for tmp, target, _ in temps:
                os.replace(tmp, target)
        except OSError as e:
            for tmp, _, _ in temps:
                _unlink_quietly(tmp)
            raise StoreError(f"cannot write tiles under {self.root}: {e}") from None
        if self._fsync:
            # The renames and any new directories must reach the disk too.
            dirs = {target.parent for target, _ in targets}
            dirs.update(d.parent for d in new_dirs)
            try:
                self._map(_fsync_dir, sorted(dirs))
            except OSError as e:
                raise StoreError(f"cannot flush directories under {self.root}: {e}") from None

    def _write_temp(self, item: tuple[Path, Path, bytes]) -> None:
        tmp, _, data = item
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def delete_partials(self, tile: Tile) -> None:
        if not tile.is_full:
            raise TileError(f"{tile.path()} is partial; only full tiles replace partials")
        dirs = [self._file(tile.path()).with_name(f"{_tail(tile.path())}.p")]
        if tile.level == 0:
            dirs.append(self._file(tile.entries_path()).with_name(f"{_tail(tile.path())}.p"))
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def _tail(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _make_dirs(directory: Path, root: Path) -> list[Path]:
    """``mkdir -p`` that returns the directories it created (to flush their parents)."""
    missing: list[Path] = []
    d = directory
    while not d.is_dir():
        missing.append(d)
        if d == root or d.parent == d:
            break
        d = d.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
            created.append(d)
        except FileExistsError:
            pass
        except OSError as e:
            raise StoreError(f"cannot create {d}: {e.strerror or e}") from None
    return created


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):  # some filesystems refuse; nothing to do
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
