"""Signed F-Droid indexes: ``entry.jar`` (+ index-v2.json) and ``index-v1.jar`` against a pin.

``index-v1.jar`` is the Guardian Project's real signed index from the corpus. The
corpus has no ``entry.jar``, so one is made the way a repository makes it: the
corpus ``entry.json`` in a JAR, v1-signed (here by the project's signer with an
apksig corpus key, whose certificate SHA-256 is the pin).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from fdroid_corpus import GUARDIAN_FINGERPRINT, corpus, key_fingerprint, rezip, sign_jar

from provenance.metadata import IndexSignatureError, ListingError, load_index


@pytest.fixture
def entry_jar(tmp_path: Path) -> Path:
    return sign_jar({"entry.json": corpus("index", "entry.json").read_bytes()}, tmp_path / "e.jar")


def test_index_v1_jar_verifies_against_pin() -> None:
    colon = ":".join(GUARDIAN_FINGERPRINT[i : i + 2] for i in range(0, 64, 2)).upper()
    for pin in (GUARDIAN_FINGERPRINT, GUARDIAN_FINGERPRINT.upper(), colon):
        cat = load_index(corpus("jars", "guardianproject-v1.jar"), repo_fingerprint=pin)
        assert cat.authenticated_by == GUARDIAN_FINGERPRINT
        assert cat.listings[0].platform == "fdroid:https://guardianproject.info/fdroid/repo"


def test_index_v1_jar_wrong_pin() -> None:
    with pytest.raises(IndexSignatureError, match="not by the pinned repository key"):
        load_index(corpus("jars", "guardianproject-v1.jar"), repo_fingerprint="00" * 32)


def test_unsigned_jar_refused() -> None:
    with pytest.raises(IndexSignatureError, match="JAR_SIG_NO_SIGNATURES"):
        load_index(corpus("jars", "unsigned.jar"), repo_fingerprint=GUARDIAN_FINGERPRINT)


def test_signed_jar_without_index_v1() -> None:
    """testy.jar is validly signed, but an index.xml (v0) JAR: not an index-v1.jar."""
    pin = "818e469465f96b704e27be2fee4c63ab9f83ddf30e7a34c7371a4728d83b0bc1"
    with pytest.raises(ListingError, match=r"has no index-v1.json"):
        load_index(corpus("jars", "testy.jar"), repo_fingerprint=pin)


def test_tampered_index_v1_jar(tmp_path: Path) -> None:
    src = corpus("jars", "guardianproject-v1.jar")
    with zipfile.ZipFile(src) as z:
        data = z.read("index-v1.json")
    forged = data.replace(b"Guardian Project Official Releases", b"Guardian Project Evil Releases")
    assert forged != data
    bad = rezip(src, tmp_path / "bad.jar", {"index-v1.json": forged})
    with pytest.raises(IndexSignatureError, match="does not verify"):
        load_index(bad, repo_fingerprint=GUARDIAN_FINGERPRINT)


def test_entry_jar_verifies_and_vouches_for_index(entry_jar: Path) -> None:
    pin = key_fingerprint("rsa-2048")
    cat = load_index(corpus("index", "index-v2.json"), entry_jar=entry_jar, repo_fingerprint=pin)
    assert cat.authenticated_by == pin
    assert len(cat.listings) == 11


def test_entry_jar_other_key(entry_jar: Path) -> None:
    with pytest.raises(IndexSignatureError, match="not by the pinned repository key"):
        load_index(
            corpus("index", "index-v2.json"),
            entry_jar=entry_jar,
            repo_fingerprint=key_fingerprint("rsa-2048_2"),
        )


def test_tampered_entry_jar(entry_jar: Path, tmp_path: Path) -> None:
    entry = (
        corpus("index", "entry.json")
        .read_bytes()
        .replace(b'"numPackages": 11', b'"numPackages": 12')
    )
    bad = rezip(entry_jar, tmp_path / "bad.jar", {"entry.json": entry})
    with pytest.raises(IndexSignatureError, match="does not verify"):
        load_index(
            corpus("index", "index-v2.json"),
            entry_jar=bad,
            repo_fingerprint=key_fingerprint("rsa-2048"),
        )


def test_tampered_index_v2(entry_jar: Path, tmp_path: Path) -> None:
    pin = key_fingerprint("rsa-2048")
    data = corpus("index", "index-v2.json").read_bytes()
    same_size = data.replace(b'"Polite Droid"', b'"Polite Dr0id"')
    assert len(same_size) == len(data) and same_size != data
    (tmp_path / "same.json").write_bytes(same_size)
    with pytest.raises(IndexSignatureError, match=r"SHA-256 .* does not match entry.json"):
        load_index(tmp_path / "same.json", entry_jar=entry_jar, repo_fingerprint=pin)
    (tmp_path / "longer.json").write_bytes(data + b"\n")
    with pytest.raises(IndexSignatureError, match=r"entry.json says 51833"):
        load_index(tmp_path / "longer.json", entry_jar=entry_jar, repo_fingerprint=pin)


def test_package_count_cross_checked(tmp_path: Path) -> None:
    """An entry.json naming the right digest but another package count is refused."""
    index = corpus("index", "index-v2.json").read_bytes()
    entry = json.loads(corpus("index", "entry.json").read_bytes())
    assert entry["index"]["sha256"] == hashlib.sha256(index).hexdigest()
    entry["index"]["numPackages"] = 12
    jar = sign_jar({"entry.json": json.dumps(entry).encode()}, tmp_path / "e.jar")
    with pytest.raises(ListingError, match=r"11 packages, entry.json says 12"):
        load_index(
            corpus("index", "index-v2.json"),
            entry_jar=jar,
            repo_fingerprint=key_fingerprint("rsa-2048"),
        )


def test_pin_and_jar_go_together(entry_jar: Path) -> None:
    index = corpus("index", "index-v2.json")
    with pytest.raises(ListingError, match="--entry-jar needs --repo-fingerprint"):
        load_index(index, entry_jar=entry_jar)
    with pytest.raises(ListingError, match="--repo-fingerprint needs --entry-jar"):
        load_index(index, repo_fingerprint=key_fingerprint("rsa-2048"))
    with pytest.raises(ListingError, match="needs --repo-fingerprint"):
        load_index(corpus("jars", "guardianproject-v1.jar"))
    with pytest.raises(ListingError, match="not a SHA-256"):
        load_index(index, entry_jar=entry_jar, repo_fingerprint="b7c2eefd")
    with pytest.raises(ListingError, match=r"vouches for index-v2.json"):
        load_index(
            corpus("index", "index-v1.json"),
            entry_jar=entry_jar,
            repo_fingerprint=key_fingerprint("rsa-2048"),
        )
