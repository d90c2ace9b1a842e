"""The offline feed for terminals: a TUF repository of trust roots and risk shards.

Publisher: :class:`FeedRepository` (:mod:`.repository`; python-tuf Metadata API,
offline root/targets keys, online feed/snapshot/timestamp keys with short expiries)
filled by :func:`publish_index` from a :class:`~provenance.verdicts.VerdictIndex`
and the log (:mod:`.content`: shards by hash prefix with entries and inclusion
proofs). Terminal: :class:`FeedClient` (:mod:`.client`; python-tuf ngclient, online
or offline) and :mod:`.evidence`, which checks the witness quorum, the proofs, the
statements' signers and recomputes each record. See ``docs/terminal.md``.
"""

from __future__ import annotations

from provenance.feed.client import (
    FeedClient,
    FeedError,
    FeedFrozen,
    FeedRollback,
    FeedTampered,
    FeedUnavailable,
    LocalApk,
    TerminalResult,
    default_cache,
    read_apk,
)
from provenance.feed.content import build_feed, publish_index
from provenance.feed.evidence import EvidenceError, EvidenceVerifier
from provenance.feed.repository import Expiry, FeedRepository, PublishResult
from provenance.feed.roots import TrustRoots, registry_root_document

__all__ = [
    "EvidenceError",
    "EvidenceVerifier",
    "Expiry",
    "FeedClient",
    "FeedError",
    "FeedFrozen",
    "FeedRepository",
    "FeedRollback",
    "FeedTampered",
    "FeedUnavailable",
    "LocalApk",
    "PublishResult",
    "TerminalResult",
    "TrustRoots",
    "build_feed",
    "default_cache",
    "publish_index",
    "read_apk",
    "registry_root_document",
]
