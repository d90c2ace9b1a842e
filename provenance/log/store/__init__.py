"""Where a log lives: its public tiles and its private sequencing state.

* :mod:`.tile_store` — :class:`TileSource` / :class:`TileStore`: checkpoint, tiles
  and entry bundles by their tlog-tiles paths; :class:`DirTileStore` keeps them as
  files, servable by any static file server;
* :mod:`.http` — :class:`~.http.HttpTileSource`, a remote log read over HTTP;
* :mod:`.state` — :class:`StateStore`: the sequence (pending entries, dedup index)
  and the integrated tree, swapped by compare-and-swap;
* :mod:`.sqlite` — :class:`SQLiteState`, the embedded default (WAL);
* :mod:`.postgres` — :class:`~.postgres.PostgresState`, for production (psycopg 3).

The HTTP and PostgreSQL modules are not imported here, so that using the embedded
log costs neither httpx nor psycopg at start-up.
"""

from provenance.log.store.errors import ConflictError, NotFoundError, StoreError
from provenance.log.store.sqlite import SQLiteState
from provenance.log.store.state import Sequenced, StateStore, TreeState
from provenance.log.store.tile_store import (
    CHECKPOINT_PATH,
    DirTileStore,
    TileSource,
    TileStore,
    check_path,
)

__all__ = [
    "CHECKPOINT_PATH",
    "ConflictError",
    "DirTileStore",
    "NotFoundError",
    "SQLiteState",
    "Sequenced",
    "StateStore",
    "StoreError",
    "TileSource",
    "TileStore",
    "TreeState",
    "check_path",
]
