"""Load published metadata from files, whatever form the platform published it in.

One entry point per CLI option: :func:`load_listing` (``--listing``: the apkprov JSON
form, an AppVerifier list or share text, or an unsigned F-Droid index) and
:func:`load_index` (``--index``: an F-Droid index, authenticated when a signed
``entry.jar`` or ``index-v1.jar`` and the pinned repository fingerprint are given).
The form is recognised from the content, never from the file name, except that a
``.jar`` index is a signed ``index-v1.jar``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provenance.metadata import appverifier, fdroid
from provenance.metadata.errors import ListingError
from provenance.metadata.jsonin import MAX_DOCUMENT_BYTES, parse_json, read_bounded
from provenance.metadata.listing import (
    SCHEMA_PREFIX,
    Catalog,
    catalog_from_json,
    normalize_sha256,
)
from provenance.metadata.signed_index import read_signed_entry

#: entry.json is a few hundred bytes; anything near this is not an entry.
MAX_ENTRY_BYTES = 1 << 20

PathLike = str | os.PathLike[str]


def _kind(doc: Any) -> str | None:
    """'apkprov', 'appverifier', 'fdroid-v2', 'fdroid-v1' or None."""
    if not isinstance(doc, dict):
        return None
    schema = doc.get("schema")
    if isinstance(schema, str) and schema.startswith(SCHEMA_PREFIX):
        return "apkprov"
    if "repo" in doc and isinstance(doc.get("packages"), dict):
        return "fdroid-v1" if isinstance(doc.get("apps"), list) else "fdroid-v2"
    if appverifier.is_appverifier(doc):
        return "appverifier"
    return None


def load_listing(path: PathLike, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Catalog:
    """A catalog from a listing file (see module docstring for the accepted forms)."""
    source = str(path)
    data = read_bounded(path, max_bytes, "listing")
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ListingError(f"{source}: not a listing (neither JSON nor text)") from None
        return appverifier.catalog_from_share(text, source)
    doc = parse_json(data, source)
    kind = _kind(doc)
    if kind == "apkprov":
        return catalog_from_json(doc, source)
    if kind == "appverifier":
        return appverifier.catalog_from_appverifier(doc, source)
    if kind == "fdroid-v2":
        return fdroid.catalog_from_index_v2(doc, source)
    if kind == "fdroid-v1":
        return fdroid.catalog_from_index_v1(doc, source)
    raise ListingError(
        f"{source}: not a listing: expected the apkprov listing JSON ({SCHEMA_PREFIX}N), "
        "an AppVerifier list or an F-Droid index"
    )


def load_index(
    path: PathLike,
    *,
    entry_jar: PathLike | None = None,
    repo_fingerprint: str | None = None,
    channel: str = fdroid.DEFAULT_CHANNEL,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Catalog:
    """A catalog from an F-Droid index, authenticated when a pin is given.

    * ``index-v2.json`` + ``entry_jar`` + ``repo_fingerprint``: ``entry.jar`` must be
      signed by the pinned key and its ``entry.json`` must name this index's SHA-256
      and size (and package count);
    * ``index-v1.jar`` + ``repo_fingerprint``: the JAR must be signed by the pinned key;
    * ``index-v2.json`` or ``index-v1.json`` alone: read as given (not authenticated).
    """
    source = str(path)
    if entry_jar is not None and repo_fingerprint is None:
        raise ListingError("--entry-jar needs --repo-fingerprint (the pinned repository key)")
    if Path(path).suffix.lower() == ".jar":
        if repo_fingerprint is None:
            raise ListingError(f"{source}: a signed index JAR needs --repo-fingerprint")
        if entry_jar is not None:
            raise ListingError("--entry-jar goes with index-v2.json, not with an index JAR")
        data = read_signed_entry(path, "index-v1.json", repo_fingerprint, max_bytes)
        doc = parse_json(data, f"{source}!index-v1.json")
        if _kind(doc) != "fdroid-v1":
            raise ListingError(f"{source}: index-v1.json is not an F-Droid index v1")
        pin = _pin(repo_fingerprint)
        return fdroid.catalog_from_index_v1(doc, source, channel=channel, authenticated_by=pin)
    data = read_bounded(path, max_bytes, "index")
    doc = parse_json(data, source)
    kind = _kind(doc)
    if kind not in ("fdroid-v1", "fdroid-v2"):
        raise ListingError(f"{source}: not an F-Droid index (index-v2.json or index-v1.json)")
    if entry_jar is None:
        if repo_fingerprint is not None:
            raise ListingError(
                "--repo-fingerprint needs --entry-jar (index-v2.json) or a signed index-v1.jar"
            )
        if kind == "fdroid-v1":
            return fdroid.catalog_from_index_v1(doc, source, channel=channel)
        return fdroid.catalog_from_index_v2(doc, source, channel=channel)
    if kind != "fdroid-v2":
        raise ListingError(f"{source}: entry.jar vouches for index-v2.json, not index v1")
    assert repo_fingerprint is not None
    raw = read_signed_entry(entry_jar, "entry.json", repo_fingerprint, MAX_ENTRY_BYTES)
    where = f"{entry_jar}!entry.json"
    entry = parse_json(raw, where)
    fdroid.check_entry(entry, data, where)
    return fdroid.catalog_from_index_v2(
        doc,
        source,
        channel=channel,
        authenticated_by=_pin(repo_fingerprint),
        num_packages=fdroid.entry_num_packages(entry, where),
    )


def _pin(fingerprint: str) -> str:
    return normalize_sha256(fingerprint, "repository fingerprint")
