"""The apkprov listing JSON form: round trip, strictness, limits, and its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import provenance.metadata as md
from provenance.metadata import (
    SCHEMA,
    Catalog,
    DeclaredPermission,
    DeclaredSdk,
    Developer,
    Listing,
    ListingError,
    Release,
    catalog_from_json,
    load_listing,
)

SIGNER = "32a23624c201b949f085996ba5ed53d40f703aca4989476949cae891022e0ed6"


def _full() -> Listing:
    return Listing(
        platform="example-store",
        package="com.example.app",
        app_name="Example",
        names={"zh-CN": "示例"},
        developer=Developer("Example Ltd", "dev-42", "京ICP备2023000001号-1A", "https://ex"),
        signers={"example-store": (SIGNER,), "github": ("ab" * 32,)},
        releases=(
            Release(
                version_code=7,
                version_name="1.7",
                apk_sha256="cd" * 32,
                apk_size=1234,
                signers=(SIGNER,),
                min_sdk=21,
                target_sdk=34,
                permissions=(
                    DeclaredPermission("android.permission.CAMERA", "scan QR codes"),
                    DeclaredPermission("android.permission.READ_PHONE_STATE", None, 28, 23),
                ),
                features=("android.hardware.camera",),
                sdks=(
                    DeclaredSdk(
                        "Firebase Analytics",
                        "analytics",
                        ("app_activity",),
                        ("com.google.firebase.analytics",),
                    ),
                ),
                channels=("Beta",),
            ),
        ),
        functions=("scan QR codes", "share links"),
        privacy_policy_url="https://example.com/privacy",
    )


def _write(tmp_path: Path, doc: Any) -> Path:
    p = tmp_path / "listing.json"
    p.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return p


def test_round_trip_catalog_and_single_listing(tmp_path: Path) -> None:
    listing = _full()
    cat = Catalog((listing,), "mem")
    assert load_listing(_write(tmp_path, cat.to_json())).listings == (listing,)
    single = {"schema": SCHEMA, **listing.to_json()}
    assert load_listing(_write(tmp_path, single)).listings == (listing,)
    assert cat.by_name("ＥＸＡＭＰＬＥ") == [listing]  # NFKC + case folding
    assert cat.by_name("示例") == [listing]
    assert listing.allowed_signers("github") == {"ab" * 32}


def test_sdks_absent_vs_empty() -> None:
    base = {"schema": SCHEMA, "platform": "p", "package": "a.b"}
    none = catalog_from_json({**base, "releases": [{"version_code": 1}]}, "x")
    empty = catalog_from_json({**base, "releases": [{"version_code": 1, "sdks": []}]}, "x")
    assert none.listings[0].releases[0].sdks is None
    assert empty.listings[0].releases[0].sdks == ()


def test_json_schema_file_matches_the_dataclasses() -> None:
    """listing.schema.json names exactly the fields the reader accepts."""
    schema = json.loads(
        (Path(md.__file__).parent / "listing.schema.json").read_text(encoding="utf-8")
    )
    assert schema["oneOf"][0]["properties"]["schema"]["const"] == SCHEMA
    listing_props = set(schema["$defs"]["listing"]["properties"]) - {"schema"}
    assert listing_props == set(_full().to_json())
    release_props = set(schema["$defs"]["release"]["properties"])
    assert set(_full().releases[0].to_json()) <= release_props
    from provenance.metadata.listing import _LISTING_FIELDS, _RELEASE_FIELDS

    assert listing_props == _LISTING_FIELDS
    assert release_props == _RELEASE_FIELDS


_BASE = {"schema": SCHEMA, "platform": "p", "package": "a.b"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**_BASE, "schema": "apkprov.listing/2"}, "unsupported listing schema"),
        ({**_BASE, "schema": "something/1"}, "not a listing: expected"),
        ({**_BASE, "colour": "red"}, r"unknown field\(s\): colour"),
        ({**_BASE, "package": "not a package"}, "not a valid package name"),
        ({**_BASE, "signers": {"Play Store": [SIGNER]}}, "not a channel id"),
        ({**_BASE, "signers": {"play": ["abcd"]}}, r"signers\.play\[0\]: not a SHA-256"),
        (
            {**_BASE, "releases": [{"version_name": "1"}]},
            r"releases\[0\]: missing required field 'version_code'",
        ),
        ({**_BASE, "releases": [{"version_code": "7"}]}, "expected an integer, got a string"),
        ({**_BASE, "releases": [{"version_code": -1}]}, "out of range"),
        ({**_BASE, "releases": [{"version_code": True}]}, "expected an integer, got a boolean"),
        ({**_BASE, "releases": [{"version_code": 1, "min_sdk": 100000}]}, "out of range"),
        ({**_BASE, "releases": [{"version_code": 1, "permissions": [{"purpose": "x"}]}]}, "'name'"),
        ({**_BASE, "developer": {"name": "x", "email": "y"}}, r"unknown field\(s\): email"),
        (
            {"schema": SCHEMA, "listings": [{"platform": "p"}]},
            r"listings\[0\]: missing required field 'package'",
        ),
        ([1, 2], "not a listing"),
    ],
)
def test_malformed(tmp_path: Path, doc: Any, message: str) -> None:
    with pytest.raises(ListingError, match=message):
        load_listing(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"schema": "apkprov.listing/1", "platform": "p", "package": "a.b", "package": "c.d"}',
            "duplicate key",
        ),
        (b'{"schema": "apkprov.listing/1", "x": NaN}', "NaN is not valid JSON"),
        (b'{"schema": "apkprov.listing/1", "platform": ', "not valid JSON"),
        (b"\xff\xfe{}", "neither JSON nor text"),
        (b'\xef\xbb\xbf{"schema": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"", "expected two lines"),
    ],
)
def test_hostile_bytes(tmp_path: Path, raw: bytes, message: str) -> None:
    p = tmp_path / "listing.json"
    p.write_bytes(raw)
    with pytest.raises(ListingError, match=message):
        load_listing(p)


def test_size_limit_checked_before_reading(tmp_path: Path) -> None:
    p = _write(tmp_path, Catalog((_full(),), "mem").to_json())
    with pytest.raises(ListingError, match="too large"):
        load_listing(p, max_bytes=100)
    with pytest.raises(ListingError, match="no such file"):
        load_listing(tmp_path / "missing.json")
    with pytest.raises(ListingError, match="is a directory"):
        load_listing(tmp_path)


def test_bom_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(_BASE).encode())
    assert load_listing(p).listings[0].package == "a.b"


def test_errors_are_input_errors() -> None:
    from provenance.errors import InputError

    assert issubclass(ListingError, InputError)
    assert issubclass(md.IndexSignatureError, ListingError)
