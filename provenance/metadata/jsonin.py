"""Strict, bounded reading of untrusted JSON documents (listings, store indexes).

Every importer reads through here so that all of them share the same limits and the
same error messages: the file size is checked before anything is read, nesting depth
is bounded by the decoder's recursion guard (reported as an error), and every field
is taken with its expected type and a dotted path
(``packages.org.example.versions.<sha>.manifest.versionCode``) that tells the user
exactly what is wrong. Duplicate object keys, ``NaN`` and ``Infinity`` are refused:
they make a document mean different things to different readers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from provenance.errors import InputError
from provenance.metadata.errors import ListingError

#: Default ceiling for one JSON document. f-droid.org's index-v2.json is ~40 MiB.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
#: Longest string field we accept (descriptions are the longest in practice).
MAX_STRING = 1 << 20


def read_bounded(
    path: str | os.PathLike[str],
    limit: int,
    what: str,
    error: type[InputError] = ListingError,
) -> bytes:
    """The bytes of ``path``, refusing files larger than ``limit`` before reading them."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise error(f"{p}: {what} too large: {size} bytes (limit {limit})")
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, expected a {what}") from None
    except OSError as e:
        raise error(f"{p}: cannot read: {e.strerror}") from None
    if len(data) > limit:
        raise error(f"{p}: {what} too large (limit {limit} bytes)")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes, where: str, error: type[InputError] = ListingError) -> Any:
    """Decode a UTF-8 JSON document strictly (see module docstring)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{where}: not UTF-8 text: {e.reason} at byte {e.start}") from None
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise error(f"{where}: not valid JSON: {e}") from None


class Node:
    """A JSON value together with where it sits in the document, for error messages.

    Accessors return plain Python values checked against the expected type; a wrong
    type raises :class:`ListingError` naming the path.
    """

    __slots__ = ("path", "value")

    #: What :meth:`fail` raises; subclasses of Node read other kinds of documents.
    error: ClassVar[type[InputError]] = ListingError

    def __init__(self, value: Any, path: str) -> None:
        self.value = value
        self.path = path

    def fail(self, message: str) -> NoReturn:
        """Raise a ListingError about this node."""
        raise self.error(f"{self.path}: {message}")

    def _child_path(self, key: str | int) -> str:
        return f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}.{key}"

    # -- containers ---------------------------------------------------------------------

    def is_object(self) -> bool:
        """Whether the value is a JSON object."""
        return isinstance(self.value, dict)

    def obj(self) -> Node:
        """This node, asserting it is an object."""
        if not isinstance(self.value, dict):
            self.fail(f"expected an object, got {_kind(self.value)}")
        return self

    def keys(self) -> list[str]:
        """Keys of an object node."""
        return list(self.obj().value)

    def has(self, key: str) -> bool:
        """Whether an object node has ``key`` with a non-null value."""
        return self.obj().value.get(key) is not None

    def get(self, key: str) -> Node | None:
        """The member ``key`` (None when absent or null)."""
        v = self.obj().value.get(key)
        return None if v is None else type(self)(v, self._child_path(key))

    def req(self, key: str) -> Node:
        """The member ``key``, which must be present and not null."""
        n = self.get(key)
        if n is None:
            self.fail(f"missing required field {key!r}")
        return n

    def items(self, limit: int) -> Iterator[tuple[str, Node]]:
        """Members of an object node (at most ``limit``)."""
        d = self.obj().value
        if len(d) > limit:
            self.fail(f"too many members: {len(d)} (limit {limit})")
        for k, v in d.items():
            yield k, type(self)(v, self._child_path(k))

    def array(self, limit: int) -> list[Node]:
        """Elements of an array node (at most ``limit``)."""
        if not isinstance(self.value, list):
            self.fail(f"expected an array, got {_kind(self.value)}")
        if len(self.value) > limit:
            self.fail(f"too many elements: {len(self.value)} (limit {limit})")
        return [type(self)(v, self._child_path(i)) for i, v in enumerate(self.value)]

    def only(self, allowed: frozenset[str] | set[str]) -> Node:
        """Refuse members other than ``allowed`` (strict schemas)."""
        extra = sorted(set(self.obj().value) - allowed)
        if extra:
            self.fail(f"unknown field(s): {', '.join(extra)}")
        return self

    # -- scalars ------------------------------------------------------------------------

    def string(self, max_len: int = MAX_STRING) -> str:
        """A string value (at most ``max_len`` characters)."""
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {_kind(self.value)}")
        if len(self.value) > max_len:
            self.fail(f"string too long: {len(self.value)} characters (limit {max_len})")
        return self.value

    def integer(self, lo: int = 0, hi: int = (1 << 63) - 1, *, decimal_string: bool = False) -> int:
        """An integer in ``[lo, hi]``; ``decimal_string`` also accepts ``"16"`` (old indexes)."""
        v = self.value
        if decimal_string and isinstance(v, str) and v.isascii() and v.isdigit() and len(v) < 20:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(f"expected an integer, got {_kind(self.value)}")
        if not lo <= v <= hi:
            self.fail(f"{v} is out of range [{lo}, {hi}]")
        return int(v)

    def boolean(self) -> bool:
        """A boolean value."""
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {_kind(self.value)}")
        return bool(self.value)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"
