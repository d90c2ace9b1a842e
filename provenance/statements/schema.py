"""A small strict schema language for predicates, and the timestamp format.

Predicates are plain JSON objects; a schema here says exactly which fields exist, which
are required, and bounds every string, number and list, so a validated predicate is
small, typed and free of surprises (no unknown fields, no control characters, no
floats). Errors name the JSON path of the first violation. The schema objects are
also introspectable (:meth:`Obj.field_names`), which keeps the documentation honest.

Timestamps are RFC 3339 in one form only: ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, seconds), so
they compare as strings and encode canonically.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from provenance.statements.canonical import MAX_SAFE_INT, canonical_json
from provenance.statements.errors import StatementFormatError
from provenance.statements.logref import LogRef

__all__ = [
    "Arr",
    "Bool",
    "Int",
    "JsonObj",
    "Obj",
    "Ref",
    "Schema",
    "Str",
    "Time",
    "format_time",
    "parse_time",
]

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# C0 controls other than tab and newline, DEL, C1 controls, lone surrogates.
_BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def parse_time(text: str, path: str = "timestamp") -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` into an aware UTC datetime."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise StatementFormatError(f"{path}: must be a UTC time like 2026-01-31T12:00:00Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise StatementFormatError(f"{path}: {text!r} is not a valid date and time") from None


def format_time(when: datetime) -> str:
    """The one timestamp form statements use (aware datetimes are converted to UTC)."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Schema(ABC):
    """Checks one JSON value; ``doc`` is a one-line description for documentation."""

    doc: str = ""

    @abstractmethod
    def check(self, value: Any, path: str) -> None:
        """Raise :class:`StatementFormatError` naming ``path`` unless ``value`` fits."""


@dataclass(frozen=True)
class Str(Schema):
    """A string: length bounds, an optional full-match pattern or a set of choices."""

    max_len: int = 256
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    multiline: bool = False
    min_len: int = 1
    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise StatementFormatError(f"{path}: must be a string")
        if self.choices is not None:
            if value not in self.choices:
                raise StatementFormatError(f"{path}: must be one of {', '.join(self.choices)}")
            return
        if not self.min_len <= len(value) <= self.max_len:
            raise StatementFormatError(
                f"{path}: must be {self.min_len}..{self.max_len} characters long"
            )
        bad = _BAD_TEXT.search(value)
        if bad is not None or (not self.multiline and "\n" in value):
            raise StatementFormatError(f"{path}: contains a control character")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise StatementFormatError(f"{path}: {value[:80]!r} is not of the required form")


@dataclass(frozen=True)
class Int(Schema):
    """An integer (never a boolean) within bounds."""

    minimum: int = 0
    maximum: int = MAX_SAFE_INT
    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StatementFormatError(f"{path}: must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise StatementFormatError(f"{path}: must be in {self.minimum}..{self.maximum}")


@dataclass(frozen=True)
class Bool(Schema):
    """A boolean, optionally one fixed value."""

    const: bool | None = None
    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise StatementFormatError(f"{path}: must be true or false")
        if self.const is not None and value is not self.const:
            raise StatementFormatError(f"{path}: must be {str(self.const).lower()}")


@dataclass(frozen=True)
class Time(Schema):
    """A timestamp in the one accepted RFC 3339 form."""

    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        parse_time(value, path)


@dataclass(frozen=True)
class Ref(Schema):
    """A :class:`LogRef` to an earlier log entry."""

    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        LogRef.from_dict(value, path)


@dataclass(frozen=True)
class JsonObj(Schema):
    """Any JSON object up to ``max_size`` canonical bytes (checked in depth elsewhere)."""

    max_size: int = 64 * 1024
    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise StatementFormatError(f"{path}: must be an object")
        if len(canonical_json(value)) > self.max_size:
            raise StatementFormatError(f"{path}: is over {self.max_size} bytes")


@dataclass(frozen=True)
class Arr(Schema):
    """A list of items of one schema; ``unique`` compares items (or one key of them)."""

    item: Schema
    min_items: int = 0
    max_items: int = 64
    unique: bool = False
    unique_key: str | None = None
    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise StatementFormatError(f"{path}: must be a list")
        if not self.min_items <= len(value) <= self.max_items:
            raise StatementFormatError(
                f"{path}: must have {self.min_items}..{self.max_items} items, has {len(value)}"
            )
        seen: set[bytes] = set()
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]")
            if self.unique or self.unique_key:
                key = canonical_json(v[self.unique_key] if self.unique_key else v)
                if key in seen:
                    what = f"{self.unique_key} " if self.unique_key else ""
                    raise StatementFormatError(f"{path}[{i}]: duplicate {what}in the list")
                seen.add(key)


@dataclass(frozen=True)
class Obj(Schema):
    """An object with exactly the listed fields: all ``required``, some ``optional``."""

    required: Mapping[str, Schema]
    optional: Mapping[str, Schema] = field(default_factory=dict)
    doc: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise StatementFormatError(f"{path}: must be an object")
        for name in self.required:
            if name not in value:
                raise StatementFormatError(f"{path}: missing field {name!r}")
        unknown = set(value) - set(self.required) - set(self.optional)
        if unknown:
            raise StatementFormatError(f"{path}: unknown field(s) {sorted(unknown)}")
        for name, v in value.items():
            schema = self.required.get(name) or self.optional[name]
            schema.check(v, f"{path}.{name}")

    def field_names(self, prefix: str = "") -> Iterator[str]:
        """Dotted paths of every field, nested objects and list items included."""
        for name, schema in (*self.required.items(), *self.optional.items()):
            dotted = f"{prefix}{name}"
            yield dotted
            inner = schema.item if isinstance(schema, Arr) else schema
            if isinstance(inner, Obj):
                yield from inner.field_names(dotted + ".")
