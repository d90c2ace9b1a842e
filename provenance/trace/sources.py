"""Where a trace client gets its answers: the HTTP service, or a data folder.

Both give the same JSON documents (:mod:`provenance.trace.answers`), so the verifier
does not care which it talks to -- and trusts neither: everything a source says is
checked against the log's key and the registry's root keys
(:mod:`provenance.trace.verify`). A source also exposes the log's tiles, which the
verifier reads to prove that the checkpoints of different answers are consistent.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import httpx

from provenance.errors import CheckFailed, InputError
from provenance.log.log import Log, NotInLogError
from provenance.log.store.http import HttpTileSource
from provenance.log.store.tile_store import TileSource
from provenance.trace.answers import actors_answer, entry_answer, trace_answer
from provenance.trace.index import TraceIndex

__all__ = ["HttpTraceSource", "LocalTraceSource", "SourceError", "TraceSource"]

_MAX_ANSWER = 64 << 20


class SourceError(CheckFailed):
    """The source did not answer as the API says (an HTTP error, malformed JSON)."""


class TraceSource(Protocol):
    """Answers to trace queries (untrusted)."""

    def actors(self, after: int) -> dict[str, Any]: ...

    def trace(self, param: str, value: str, after: int) -> dict[str, Any]: ...

    def entry(self, index: int) -> dict[str, Any] | None:
        """The entry at ``index`` read from the log, or None if there is none."""
        ...

    def tiles(self) -> TileSource: ...

    def close(self) -> None: ...


class HttpTraceSource:
    """The service at ``url`` (``GET /v1/trace``, ``/v1/actors``, ``/v1/entries``)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"service URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"User-Agent": "apkprov"}
        )
        self._tiles: HttpTileSource | None = None

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
        try:
            with self._client.stream("GET", path, params=params) as resp:
                if resp.status_code == 404 and path.startswith("/v1/entries/"):
                    return None
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_ANSWER:
                        raise SourceError(f"{self.url}{path}: answer larger than {_MAX_ANSWER}")
        except httpx.HTTPError as e:
            raise SourceError(f"{self.url}{path}: {e}") from None
        if resp.status_code != 200:
            text = body[:300].decode("utf-8", "replace").strip()
            raise SourceError(f"{self.url}{path}: HTTP {resp.status_code} {text}")
        try:
            doc = json.loads(body)
        except ValueError:
            raise SourceError(f"{self.url}{path}: the answer is not JSON") from None
        if not isinstance(doc, dict):
            raise SourceError(f"{self.url}{path}: the answer is not a JSON object")
        return doc

    def actors(self, after: int) -> dict[str, Any]:
        doc = self._get("/v1/actors", {"after": after} if after >= 0 else {})
        assert doc is not None
        return doc

    def trace(self, param: str, value: str, after: int) -> dict[str, Any]:
        params: dict[str, Any] = {param: value}
        if after >= 0:
            params["after"] = after
        doc = self._get("/v1/trace", params)
        assert doc is not None
        return doc

    def entry(self, index: int) -> dict[str, Any] | None:
        return self._get(f"/v1/entries/{int(index)}", {})

    def tiles(self) -> TileSource:
        if self._tiles is None:
            self._tiles = HttpTileSource(self.url)
        return self._tiles

    def close(self) -> None:
        if self._tiles is not None:
            self._tiles.close()
        self._client.close()


class LocalTraceSource:
    """A data folder opened in this process (``apkprov trace --dir``)."""

    def __init__(self, log: Log, index: TraceIndex) -> None:
        self.log = log
        self.index = index

    def actors(self, after: int) -> dict[str, Any]:
        return actors_answer(self.log, self.index, after=after)

    def trace(self, param: str, value: str, after: int) -> dict[str, Any]:
        return trace_answer(self.log, self.index, param, value, after=after)

    def entry(self, index: int) -> dict[str, Any] | None:
        try:
            return entry_answer(self.log, index)
        except NotInLogError:
            return None

    def tiles(self) -> TileSource:
        return self.log.tiles

    def close(self) -> None:
        pass
