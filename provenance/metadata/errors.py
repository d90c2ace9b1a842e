"""Errors of the published-metadata importers.

A listing that cannot be read or authenticated is unusable input for a check (the
CLI's exit code 2), never a risk verdict: the APK was not judged at all.
"""

from __future__ import annotations

from provenance.errors import InputError


class ListingError(InputError):
    """A listing, index or signer list is malformed, too large, or of an unknown version."""


class IndexSignatureError(ListingError):
    """A signed index (``entry.jar``, ``index-v1.jar``) does not verify against its pin,
    or the index it vouches for does not match it."""
