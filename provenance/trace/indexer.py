"""Keeping the trace index in step with the log.

The index follows the log, never leads it: a row is written only after the log
has durably sequenced the entry (:meth:`Indexer.record`, called with the index the
append returned). Whatever the index missed -- a crash between the log's commit and
the index's, entries appended by another process or by ``apkprov log append`` --
:meth:`Indexer.catch_up` reads from the log itself: integrated entries from the
entry bundles, the rest from the state store's pending table. Running it from an
empty index rebuilds the whole index from the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from provenance.log.log import Log
from provenance.log.store.errors import NotFoundError, StoreError
from provenance.log.tiles import TILE_WIDTH, Tile
from provenance.trace.extract import IndexRow, index_row
from provenance.trace.index import TraceIndex

__all__ = ["Indexer", "read_log_entries"]

logger = logging.getLogger(__name__)

_PENDING_BYTES = 16 << 20


def read_log_entries(log: Log, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Entries ``start <= i < end`` of the log, in order, each once durable.

    Integrated entries come from the entry bundles; sequenced but not yet
    integrated ones from the state store. An integration running meanwhile moves
    entries from the second to the first; the loop re-reads the tree and goes on.
    """
    i = start
    stalls = 0
    while i < end:
        size = log.state.tree().size
        if i < size:
            n = i // TILE_WIDTH
            width = min(TILE_WIDTH, size - n * TILE_WIDTH)
            try:
                entries = log.tiles.read_entries(Tile(0, n, width))
            except NotFoundError:
                stalls += 1
                if stalls > 50:
                    raise
                continue  # a partial bundle was replaced by the full one: re-read
            for j in range(i - n * TILE_WIDTH, width):
                if i >= end:
                    return
                yield i, entries[j]
                i += 1
            continue
        try:
            pending = log.state.read_pending(i, min(end - i, 4096), _PENDING_BYTES)
        except StoreError:
            pending = []  # integrated meanwhile: the tree moved past i
        if not pending:
            stalls += 1
            if stalls > 50:
                raise StoreError(f"log entry {i} is neither integrated nor pending")
            continue
        stalls = 0
        for entry in pending:
            yield i, entry
            i += 1


class Indexer:
    """Feeds ``index`` from ``log``."""

    def __init__(self, log: Log, index: TraceIndex, *, batch: int = 1024) -> None:
        self.log = log
        self.index = index
        self.batch = batch

    def catch_up(self) -> list[IndexRow]:
        """Index every durable log entry the index does not have yet; return the new
        rows (in log order)."""
        added: list[IndexRow] = []
        while True:
            start = self.index.size()
            end = self.log.state.sequenced_size()
            if start >= end:
                return added
            end = min(end, start + self.batch)
            rows: list[IndexRow] = []
            for i, entry in read_log_entries(self.log, start, end):
                row = index_row(i, entry)
                if row is None:
                    logger.info("log entry %d is not a statement; not indexed", i)
                else:
                    rows.append(row)
            if self.index.add(start, rows, end):
                added += rows

    def record(self, index: int, entry: bytes) -> IndexRow | None:
        """Index the entry just appended at ``index`` (after the append returned).

        The common case is one small transaction; if the index is behind (entries
        from elsewhere) it catches up from the log instead.
        """
        if self.index.size() == index:
            row = index_row(index, entry)
            if self.index.add(index, [row] if row is not None else [], index + 1):
                return row
        for row in self.catch_up():
            if row.index == index:
                return row
        return None
