"""Canonical JSON for everything that is signed or logged, and a bounded strict parser.

DSSE signs the payload bytes exactly as they are and verifiers never re-serialize, so
any encoding would verify. We still serialize once, deterministically, so that one
statement has one byte string: its digest then identifies it, the log leaf is stable,
and two producers of the same statement agree. The encoding is RFC 8785 (JCS)
restricted to the values our schemas use: objects, arrays, strings, booleans, null and
integers within +-(2**53 - 1). Floats are refused, which removes the only hard part
of JCS (number formatting); for this subset JCS is compact JSON with object keys
sorted by their UTF-16 code units and non-ASCII characters written as UTF-8.

:func:`parse_json` is the one way input JSON is read here: it bounds the size before
parsing and the nesting depth after, and refuses duplicate keys, floats, NaN and lone
surrogates, so whatever it returns can be re-encoded canonically.
"""

from __future__ import annotations

import json
from typing import Any

from provenance.statements.errors import StatementFormatError, StatementTooLarge

__all__ = ["MAX_SAFE_INT", "canonical_json", "parse_json"]

MAX_SAFE_INT = (1 << 53) - 1
"""Largest integer every JSON implementation reads exactly (I-JSON, RFC 7493)."""

_DEFAULT_MAX_DEPTH = 32


def _utf16_key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be", "surrogatepass")


def _encode(value: Any, out: list[str], depth: int) -> None:
    if depth > 64:
        raise StatementFormatError("value nests deeper than 64 levels")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise StatementFormatError(f"integer {value} is outside +-(2**53 - 1)")
        out.append(str(int(value)))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise StatementFormatError(f"object key {k!r} is not a string")
        out.append("{")
        for i, (k, v) in enumerate(sorted(value.items(), key=_utf16_key)):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _encode(v, out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _encode(v, out, depth + 1)
        out.append("]")
    elif isinstance(value, float):
        raise StatementFormatError("floating-point numbers are not allowed in statements")
    else:
        raise StatementFormatError(f"cannot encode {type(value).__name__} as JSON")


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 encoding of ``value`` (JCS on the integer-only subset)."""
    out: list[str] = []
    _encode(value, out, 0)
    text = "".join(out)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise StatementFormatError("string contains a lone surrogate") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise StatementFormatError(f"duplicate object key {k[:64]!r}")
        out[k] = v
    return out


def _no_float(text: str) -> Any:
    raise StatementFormatError(f"floating-point number {text[:32]} is not allowed")


def _no_constant(text: str) -> Any:
    raise StatementFormatError(f"{text} is not valid JSON")


def _check_tree(value: Any, max_depth: int, what: str) -> None:
    """Depth, integer range and lone surrogates, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > max_depth:
                raise StatementFormatError(f"{what} nests deeper than {max_depth} levels")
            items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]
            for k, x in items:
                if k is not None:
                    _check_string(k, what)
                stack.append((x, depth + 1))
        elif isinstance(v, str):
            _check_string(v, what)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SAFE_INT:
            raise StatementFormatError(f"{what}: integer outside +-(2**53 - 1)")


def _check_string(s: str, what: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise StatementFormatError(f"{what} contains a lone surrogate escape") from None


def parse_json(
    data: bytes, *, max_size: int, max_depth: int = _DEFAULT_MAX_DEPTH, what: str = "JSON"
) -> Any:
    """Parse UTF-8 JSON strictly, refusing ``data`` over ``max_size`` bytes unread.

    Raises :class:`StatementTooLarge` or :class:`StatementFormatError`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StatementFormatError(f"{what} must be bytes")
    if len(data) > max_size:
        raise StatementTooLarge(f"{what} is {len(data)} bytes, over the {max_size}-byte limit")
    raw = bytes(data)
    if raw.startswith(b"\xef\xbb\xbf"):
        raise StatementFormatError(f"{what} starts with a byte-order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StatementFormatError(f"{what} is not valid UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise StatementFormatError(f"{what} nests too deeply") from None
    except json.JSONDecodeError as e:
        raise StatementFormatError(f"{what} is not valid JSON: {e.msg} at {e.pos}") from None
    except ValueError as e:  # e.g. an integer literal over Python's digit limit
        raise StatementFormatError(f"{what} is not valid JSON: {e}") from None
    _check_tree(value, max_depth, what)
    return value
