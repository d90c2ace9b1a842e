"""The resources.arsc reader used to resolve manifest references: corpus and hostile input."""

from __future__ import annotations

import struct
import zipfile
from functools import cache

import pytest
from corpus import shared_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import AxmlError
from provenance.inspect.resources import ResourceTable


@cache
def _arsc() -> bytes:
    path = shared_dir() / "corpus" / "fdroid" / "apks" / "repo__souch.smsbypass_9.apk"
    if not path.exists():
        pytest.skip("corpus not found")
    with zipfile.ZipFile(path) as z:
        return z.read("resources.arsc")


def test_resolves_string_reference() -> None:
    table = ResourceTable(_arsc())
    value = table.resolve(0x7F050007)  # android:versionName="@string/..."
    assert value is not None and value.string == "0.9"
    assert table.resolve(0x7F7F0000) is None
    assert table.resolve(0x01010000) is None


def _exercise(data: bytes) -> None:
    try:
        table = ResourceTable(data)
        for rid in (0x7F050007, 0x7F050022, 0x7F020000, 0x7F010000, 0x7FFF0001):
            table.resolve(rid)
    except AxmlError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hostile_tables(data: st.DataObject) -> None:
    blob = bytearray(_arsc())
    cut = data.draw(st.integers(0, len(blob)))
    for _ in range(data.draw(st.integers(0, 4))):
        off = data.draw(st.integers(0, max(0, len(blob) - 4)))
        struct.pack_into("<I", blob, off, data.draw(st.integers(0, 0xFFFFFFFF)))
    _exercise(bytes(blob[:cut]))
