"""Canonical JSON: RFC 8785 on the integer-only subset, and the strict bounded parser."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provenance.statements import StatementFormatError, StatementTooLarge, canonical_json
from provenance.statements.canonical import MAX_SAFE_INT, parse_json

VALUES: list[Any] = [
    {"b": 1, "a": [True, False, None], "c": {"z": "", "y": -5}},
    {"\U0001f600": 1, "\ue000": 2, "a": 3},  # UTF-16 order puts the emoji first
    {"s": 'quote " backslash \\ tab \t nl \n ctl \x01 del \x7f é 中 \u2028 \U0001f600'},
    [MAX_SAFE_INT, -MAX_SAFE_INT, 0],
    "text",
]


@pytest.mark.parametrize("value", VALUES)
def test_matches_rfc8785(value: Any) -> None:
    rfc8785 = pytest.importorskip("rfc8785")  # comes with sigstore-python
    assert canonical_json(value) == rfc8785.dumps(value)


def test_utf16_key_order_and_compact_form() -> None:
    assert canonical_json({"\U0001f600": 1, "\ue000": 2}) == '{"\U0001f600":1,"\ue000":2}'.encode()
    assert canonical_json({"b": [1, {"d": 0, "c": None}], "a": "é"}) == (
        '{"a":"é","b":[1,{"c":null,"d":0}]}'.encode()
    )


@pytest.mark.parametrize(
    "value,match",
    [
        (1.5, "floating"),
        (MAX_SAFE_INT + 1, "outside"),
        ({1: "x"}, "not a string"),
        ("\ud800", "surrogate"),
        (b"bytes", "cannot encode"),
    ],
)
def test_unencodable_values(value: Any, match: str) -> None:
    with pytest.raises(StatementFormatError, match=match):
        canonical_json(value)


@pytest.mark.parametrize(
    "data,match",
    [
        (b'{"a":1,"a":2}', "duplicate"),
        (b"[1.0]", "floating"),
        (b"[1e3]", "floating"),
        (b"[NaN]", "not valid JSON"),
        (b"[Infinity]", "not valid JSON"),
        (b'["\\ud800"]', "surrogate"),
        (b'{"\\udc00":1}', "surrogate"),
        (b"[9007199254740992]", "integer outside"),
        (b"[" + b"1" * 5000 + b"]", "not valid JSON"),
        (b"[[[[[[]]]]]]", "nests deeper"),
        (b"[" * 5000 + b"]" * 5000, "nests"),
        (b"\xef\xbb\xbf{}", "byte-order"),
        (b"{} x", "not valid JSON"),
    ],
)
def test_parser_refuses(data: bytes, match: str) -> None:
    with pytest.raises(StatementFormatError, match=match):
        parse_json(data, max_size=1 << 20, max_depth=5)


def test_parser_bounds_size_first() -> None:
    with pytest.raises(StatementTooLarge):
        parse_json(b"[" + b"0," * 1000 + b"0]", max_size=100)


def test_parse_then_encode_is_canonical() -> None:
    doc = {"z": [1, 2, {"k": "v"}], "a": "ü", "m": None}
    loose = json.dumps(doc, indent=3, ensure_ascii=True).encode()
    assert canonical_json(parse_json(loose, max_size=1000)) == canonical_json(doc)
