"""Where things live in the feed: TUF role names, target paths, shard naming.

Shared by the publisher and the terminal so both compute the same target path for
an APK digest or a package name. Targets are plain relative paths; with consistent
snapshots the files on the server are ``targets/<dir>/<sha256>.<name>``, which is
python-tuf's convention, so any static HTTP server can serve the repository.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "APK_SHARDS",
    "FEED_PATHS",
    "FEED_ROLE",
    "INFO",
    "METADATA_DIR",
    "OFFLINE_ROLES",
    "ONLINE_ROLES",
    "PACKAGE_SHARDS",
    "REGISTRY",
    "ROOTS",
    "TARGETS_DIR",
    "TOP_ROLES",
    "apk_shard",
    "package_shard",
]

METADATA_DIR = "metadata"
TARGETS_DIR = "targets"
FEED_ROLE = "feed"
TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
OFFLINE_ROLES = ("root", "targets")
"""Keys kept off the publishing machine (the ceremony in docs/terminal.md)."""
ONLINE_ROLES = ("snapshot", "timestamp", FEED_ROLE)
"""Keys the publisher holds: they re-sign every few hours."""

ROOTS = {
    "log": "roots/log.vkey",
    "policy": "roots/witness.policy",
    "registry": "roots/registry-root.json",
    "verdict_key": "roots/verdict-key.pem",
}
"""Trust roots, signed by the (offline) top-level targets role."""

APK_SHARDS = "feed/apk"
PACKAGE_SHARDS = "feed/pkg"
REGISTRY = "feed/registry.json"
INFO = "feed/info.json"
FEED_PATHS = ["feed/*", "feed/*/*"]
"""What the delegated online role may sign (TUF patterns match per path segment)."""


def apk_shard(apk_sha256: str, prefix_len: int) -> str:
    """The shard holding the record of the APK with this SHA-256."""
    return f"{APK_SHARDS}/{apk_sha256[:prefix_len]}.json"


def package_shard(package: str, prefix_len: int) -> str:
    """The shard holding a package's record (by the SHA-256 of its name)."""
    digest = hashlib.sha256(package.encode("utf-8")).hexdigest()
    return f"{PACKAGE_SHARDS}/{digest[:prefix_len]}.json"
