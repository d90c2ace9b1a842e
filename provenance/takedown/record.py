"""Recording what a trace source answered, and answering again from the recording.

An evidence bundle must be checkable later, offline, by the same verifier that
checked it first (:class:`~provenance.trace.verify.TraceVerifier`). So instead of
re-packaging verified statements in a new format -- which a second verifier would
have to trust -- :class:`RecordingSource` keeps the exact answers a source gave
(actor registry pages, trace pages, fetched entries, and the tiles read for
consistency proofs), and :class:`ReplaySource` gives them back to a verifier. The
answers carry every statement with its tlog-proof and signed checkpoint; nothing in
a recording is trusted, it is only re-verified.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import CheckFailed, InputError
from provenance.log.store.errors import NotFoundError
from provenance.log.store.tile_store import TileSource, check_path, max_size
from provenance.log.tiles import TileError
from provenance.trace.sources import TraceSource

__all__ = ["MissingAnswer", "Recording", "RecordingSource", "ReplaySource"]


class MissingAnswer(CheckFailed):
    """The verifier asked a replayed source for an answer the recording lacks."""


@dataclass
class Recording:
    """Answers in the order they were given, keyed as they were asked."""

    actors: dict[int, dict[str, Any]] = field(default_factory=dict)
    trace: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    entries: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    tiles: dict[str, bytes] = field(default_factory=dict)

    def answers(self) -> list[dict[str, Any]]:
        """Every answer document (for looking at what the source claimed)."""
        out = [*self.actors.values(), *self.trace.values()]
        out += [a for a in self.entries.values() if a is not None]
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``answers`` and ``tiles`` members of an evidence bundle."""
        return {
            "answers": {
                "actors": [{"after": k, "answer": v} for k, v in self.actors.items()],
                "trace": [
                    {"query": {p: v}, "after": a, "answer": ans}
                    for (p, v, a), ans in self.trace.items()
                ],
                "entries": [{"index": k, "answer": v} for k, v in self.entries.items()],
            },
            "tiles": {
                path: base64.b64encode(data).decode("ascii") for path, data in self.tiles.items()
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "evidence bundle") -> Recording:
        """Parse the ``answers`` and ``tiles`` members strictly (shapes, not content)."""
        rec = cls()
        answers = doc.get("answers")
        tiles = doc.get("tiles", {})
        if not isinstance(answers, dict) or not isinstance(tiles, dict):
            raise InputError(f"{where}: answers and tiles must be objects")
        for item in _list(answers, "actors", where):
            rec.actors[_int(item, "after", where)] = _answer(item.get("answer"), where)
        for item in _list(answers, "trace", where):
            query = item.get("query")
            if not isinstance(query, dict) or len(query) != 1:
                raise InputError(f"{where}: a trace answer needs a query of one key")
            ((param, value),) = query.items()
            if not isinstance(value, str):
                raise InputError(f"{where}: a trace query value must be a string")
            key = (str(param), value, _int(item, "after", where))
            rec.trace[key] = _answer(item.get("answer"), where)
        for item in _list(answers, "entries", where):
            raw = item.get("answer")
            rec.entries[_int(item, "index", where)] = None if raw is None else _answer(raw, where)
        for path, data in tiles.items():
            try:
                check_path(path)
                blob = base64.b64decode(data, validate=True)
            except (TileError, TypeError, binascii.Error, ValueError):
                raise InputError(f"{where}: bad tile {str(path)[:80]!r}") from None
            if len(blob) > max_size(path):
                raise InputError(f"{where}: tile {path} is too large")
            rec.tiles[path] = blob
        return rec


def _list(doc: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    value = doc.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(f"{where}: answers.{name} must be a list of objects")
    return value


def _int(item: dict[str, Any], name: str, where: str) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: {name} must be an integer")
    return value


def _answer(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: an answer must be a JSON object")
    return value


class _RecordingTiles(TileSource):
    """Reads through to the real tiles and keeps every file it read."""

    def __init__(self, inner: TileSource, store: dict[str, bytes]) -> None:
        self._inner = inner
        self._store = store

    def read(self, path: str) -> bytes:
        data = self._inner.read(path)
        self._store[path] = data
        return data


class _ReplayTiles(TileSource):
    """The recorded tiles; anything else is not found."""

    def __init__(self, store: dict[str, bytes]) -> None:
        self._store = store

    def read(self, path: str) -> bytes:
        data = self._store.get(path)
        if data is None:
            raise NotFoundError(path, f"{path} is not in the evidence bundle")
        return data


class RecordingSource:
    """A :class:`~provenance.trace.sources.TraceSource` that keeps what ``inner`` said."""

    def __init__(self, inner: TraceSource, recording: Recording | None = None) -> None:
        self.inner = inner
        self.recording = recording or Recording()
        self._tiles: _RecordingTiles | None = None

    def actors(self, after: int) -> dict[str, Any]:
        answer = self.inner.actors(after)
        self.recording.actors[after] = answer
        return answer

    def trace(self, param: str, value: str, after: int) -> dict[str, Any]:
        answer = self.inner.trace(param, value, after)
        self.recording.trace[(param, value, after)] = answer
        return answer

    def entry(self, index: int) -> dict[str, Any] | None:
        answer = self.inner.entry(index)
        self.recording.entries[index] = answer
        return answer

    def tiles(self) -> TileSource:
        if self._tiles is None:
            self._tiles = _RecordingTiles(self.inner.tiles(), self.recording.tiles)
        return self._tiles

    def close(self) -> None:
        self.inner.close()


class ReplaySource:
    """Answers from a :class:`Recording` only: offline, and nothing new."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def actors(self, after: int) -> dict[str, Any]:
        answer = self.recording.actors.get(after)
        if answer is None:
            raise MissingAnswer(f"the bundle has no actor registry page after {after}")
        return answer

    def trace(self, param: str, value: str, after: int) -> dict[str, Any]:
        answer = self.recording.trace.get((param, value, after))
        if answer is None:
            raise MissingAnswer(f"the bundle has no answer for {param}={value} after {after}")
        return answer

    def entry(self, index: int) -> dict[str, Any] | None:
        """The recorded entry; one the bundle lacks counts as one the log lacks (the
        verifier reports the citation it cannot follow)."""
        return self.recording.entries.get(index)

    def tiles(self) -> TileSource:
        return _ReplayTiles(self.recording.tiles)

    def close(self) -> None:
        pass
