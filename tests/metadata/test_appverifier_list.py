"""AppVerifier's signer list: per-channel keys, both hash spellings, the share format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import require, shared_dir

from provenance.metadata import ListingError, load_listing

DB = shared_dir() / "data" / "metadata" / "appverifier_db.json"
MULLVAD_PLAY = "d74ce0e0b29f4d1d57abf5ef7f9a3757e787cca7a6259b9c32bb5bb18e3463bd"


def _colon(hexstr: str) -> str:
    return ":".join(hexstr[i : i + 2] for i in range(0, 64, 2)).upper()


def test_shared_database() -> None:
    cat = load_listing(require(DB))
    assert len(cat.listings) == 100
    (mullvad,) = cat.by_package("net.mullvad.mullvadvpn")
    assert mullvad.platform == "appverifier"
    assert set(mullvad.signers) == {"website", "github", "google_play_store", "fdroid"}
    assert mullvad.signers["google_play_store"] == (MULLVAD_PLAY,)
    # one package, three keys: the channel decides which is right
    assert len(mullvad.allowed_signers()) == 3
    assert mullvad.allowed_signers("google_play_store") == {MULLVAD_PLAY}
    assert cat.by_signer(MULLVAD_PLAY) == [mullvad]


def test_app_format_colon_hex(tmp_path: Path) -> None:
    """The app's own form: ``hashes`` in upper-case colon hex, keyed by package."""
    doc = {
        "net.mullvad.mullvadvpn": [
            {"sources": ["GOOGLE_PLAY_STORE"], "hashes": [_colon(MULLVAD_PLAY)]},
            {"sources": ["FDROID", "GITHUB"], "hashes": [_colon("ab" * 32)]},
        ]
    }
    p = tmp_path / "av.json"
    p.write_text(json.dumps(doc))
    (x,) = load_listing(p).listings
    assert x.signers == {
        "google_play_store": (MULLVAD_PLAY,),
        "fdroid": ("ab" * 32,),
        "github": ("ab" * 32,),
    }


def test_share_format(tmp_path: Path) -> None:
    p = tmp_path / "share.txt"
    p.write_text(f"net.mullvad.mullvadvpn\n{_colon(MULLVAD_PLAY)}\n")
    (x,) = load_listing(p).listings
    assert x.signers == {"shared": (MULLVAD_PLAY,)}
    p.write_text("net.mullvad.mullvadvpn\n")
    with pytest.raises(ListingError, match="expected two lines"):
        load_listing(p)
    p.write_text("net.mullvad.mullvadvpn\nAB:CD\n")
    with pytest.raises(ListingError, match="not a SHA-256"):
        load_listing(p)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"entries": [{"packageName": "a.b", "hashesList": [{"sources": ["GITHUB"]}]}]},
            "'hashes'",
        ),
        ({"entries": [{"packageName": "a b", "hashesList": []}]}, "not a valid package name"),
        ({"a.b": [{"sources": ["GIT HUB"], "hashes": ["ab" * 32]}]}, "not a channel id"),
        ({"a.b": [{"sources": "GITHUB", "hashes": ["ab" * 32]}]}, "expected an array"),
    ],
)
def test_malformed(tmp_path: Path, doc: object, message: str) -> None:
    p = tmp_path / "av.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ListingError, match=message):
        load_listing(p)
