"""Published app metadata: the listing schema and importers for real store formats.

``listing`` is the schema every importer produces; ``fdroid`` (index v1/v2),
``appverifier`` and the JSON form are the importers; ``signed_index`` authenticates
F-Droid's signed index JARs against a pinned key; ``load`` picks the importer for a
file.
"""

from __future__ import annotations

from provenance.metadata.errors import IndexSignatureError, ListingError
from provenance.metadata.listing import (
    SCHEMA,
    Catalog,
    DeclaredPermission,
    DeclaredSdk,
    Developer,
    Listing,
    Release,
    catalog_from_json,
    normalize_name,
    normalize_sha256,
)
from provenance.metadata.load import load_index, load_listing

__all__ = [
    "SCHEMA",
    "Catalog",
    "DeclaredPermission",
    "DeclaredSdk",
    "Developer",
    "IndexSignatureError",
    "Listing",
    "ListingError",
    "Release",
    "catalog_from_json",
    "load_index",
    "load_listing",
    "normalize_name",
    "normalize_sha256",
]
