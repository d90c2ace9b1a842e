"""Read a remote log over HTTP: the tlog-tiles URLs under a prefix.

Used by verifiers and monitors (``apkprov log verify --url``). Every response is
bounded by what the resource can hold before it is read in full, and anything but
200 or 404 is an error rather than data.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from provenance.log.store.errors import NotFoundError, StoreError
from provenance.log.store.tile_store import TileSource, check_path, max_size
from provenance.log.tiles import Tile

__all__ = ["HttpTileSource"]


class HttpTileSource(TileSource):
    """A :class:`TileSource` for the log at ``prefix`` (``https://host/log``).

    Tiles asked for together are fetched on ``threads`` keep-alive connections.
    """

    def __init__(
        self,
        prefix: str,
        *,
        timeout: float = 30.0,
        threads: int = 4,
        client: httpx.Client | None = None,
    ) -> None:
        if not prefix.startswith(("http://", "https://")):
            raise StoreError(f"log URL {prefix!r} must start with http:// or https://")
        self.prefix = prefix.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            headers={"Accept-Encoding": "gzip, identity", "User-Agent": "apkprov"},
        )
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"HttpTileSource({self.prefix!r})"

    def read(self, path: str) -> bytes:
        url = f"{self.prefix}/{check_path(path)}"
        limit = max_size(path)
        try:
            with self._client.stream("GET", url) as resp:
                if resp.status_code == 404:
                    raise NotFoundError(path, f"{url}: not found (404)")
                if resp.status_code != 200:
                    raise StoreError(f"{url}: HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise StoreError(f"{url}: response is larger than {limit} bytes")
        except httpx.HTTPError as e:
            raise StoreError(f"{url}: {e}") from None
        return bytes(body)

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        if len(tiles) <= 1 or self._threads == 1:
            return [self.read_tile(t) for t in tiles]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="tile-http")
        return list(self._pool.map(self.read_tile, tiles))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._own_client:
            self._client.close()
