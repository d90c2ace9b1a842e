"""AppVerifier's signer list (package → signer SHA-256s per source channel).

AppVerifier (github.com/soupslurpr/AppVerifier) ships an internal database of the
signing certificates apps use on each source: ``GOOGLE_PLAY_STORE``, ``GITHUB``,
``FDROID``, ``WEBSITE``, ... One package can legitimately have a different key per
source (Mullvad, Proton VPN), which is why listings keep allowed signers per channel.
Source names become channel ids in lower case (``google_play_store``).

Three shapes are read:

* the project's export ``{"entries": [{"packageName", "hashesList": [...]}]}``;
* a plain mapping ``{packageName: [{"sources", "hashes"|"sha256", ...}]}``;
* the share format: two lines, the package name then the colon-hex SHA-256.

Hashes may be upper-case colon hex (the app's own form) or plain hex.
"""

from __future__ import annotations

from typing import Any

from provenance.metadata.errors import ListingError
from provenance.metadata.jsonin import Node
from provenance.metadata.listing import (
    MAX_ITEMS,
    MAX_LISTINGS,
    MAX_NAME,
    Catalog,
    Listing,
    check_channel,
    check_package,
    normalize_sha256,
)

PLATFORM = "appverifier"
#: Channel of a share-format entry, which names no source.
SHARED_CHANNEL = "shared"


def is_appverifier(doc: Any) -> bool:
    """Whether a parsed JSON document looks like an AppVerifier list."""
    if not isinstance(doc, dict):
        return False
    entries = doc.get("entries")
    if isinstance(entries, list):
        return all(isinstance(e, dict) and "hashesList" in e for e in entries[:8])
    sample = list(doc.values())[:8]
    return bool(sample) and all(
        isinstance(v, list) and all(isinstance(h, dict) and "sources" in h for h in v[:4])
        for v in sample
    )


def catalog_from_appverifier(doc: Any, source: str) -> Catalog:
    """Listings (signers only) from a parsed AppVerifier JSON document."""
    root = Node(doc, source).obj()
    pairs: list[tuple[str, Node]] = []
    if (entries := root.get("entries")) is not None and isinstance(entries.value, list):
        for e in entries.array(MAX_LISTINGS):
            e.obj()
            pairs.append((e.req("packageName").string(MAX_NAME), e.req("hashesList")))
    else:
        pairs = list(root.items(MAX_LISTINGS))
    listings = []
    seen: set[str] = set()
    for package, hashes in pairs:
        check_package(package, hashes.path)
        if package in seen:
            hashes.fail(f"package {package} listed twice")
        seen.add(package)
        listings.append(Listing(PLATFORM, package, signers=_channels(hashes)))
    return Catalog(tuple(listings), source)


def _channels(n: Node) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for h in n.array(MAX_ITEMS):
        h.obj()
        values = h.get("hashes") or h.get("sha256")
        if values is None:
            h.fail("missing required field 'hashes'")
        digests = [normalize_sha256(v.string(MAX_NAME), v.path) for v in values.array(MAX_ITEMS)]
        for s in h.req("sources").array(MAX_ITEMS):
            channel = check_channel(s.string(MAX_NAME).lower(), s.path)
            bucket = out.setdefault(channel, [])
            bucket.extend(d for d in digests if d not in bucket)
    return {k: tuple(v) for k, v in out.items()}


def catalog_from_share(text: str, source: str) -> Catalog:
    """One listing from AppVerifier's share format (package line, then hash line)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 2:
        raise ListingError(f"{source}: expected two lines: the package name, then the SHA-256")
    package = check_package(lines[0], source)
    digest = normalize_sha256(lines[1], f"{source}: line 2")
    return Catalog((Listing(PLATFORM, package, signers={SHARED_CHANNEL: (digest,)}),), source)
