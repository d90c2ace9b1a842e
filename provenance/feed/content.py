"""The feed's content: shards of records, each with the log evidence behind them.

A shard (``feed/apk/<prefix>.json`` by APK SHA-256, ``feed/pkg/<prefix>.json`` by the
SHA-256 of the package name) holds the records of :mod:`provenance.verdicts.records`
for its keys, the checkpoint they were proven against, and for every log entry a
record cites: the entry bytes and its inclusion proof (the hashes of a tlog-proof@v1
whose checkpoint is the shard's). A file's record also cites the developer
registrations that make its signer an allowed signer of its package (or that
establish the package's known signers, when its own is not one), so a terminal
replaying the cited entries reaches the same verdict. A terminal downloads two
shards, not the feed, and can check every fact offline. ``feed/registry.json`` carries the actor
registrations (with proofs) from which the terminal rebuilds the actor registry, and
``feed/info.json`` the shard prefix length and the log size covered.

Documents are canonical JSON, so an unchanged shard is the same file (and the same
TUF target hash) from one publish to the next as long as the checkpoint is unchanged.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from provenance.errors import CheckFailed
from provenance.feed.layout import INFO, REGISTRY, apk_shard, package_shard
from provenance.log.merkle import HashReader, Node, inclusion_proof
from provenance.statements import LogRef
from provenance.statements.canonical import canonical_json
from provenance.statements.schema import format_time
from provenance.verdicts.index import VerdictIndex

__all__ = ["INFO_FORMAT", "REGISTRY_FORMAT", "SHARD_FORMAT", "build_feed", "publish_index"]

SHARD_FORMAT = "apkprov-feed-shard/1"
REGISTRY_FORMAT = "apkprov-feed-registry/1"
INFO_FORMAT = "apkprov-feed-info/1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Evidence:
    """Entries and inclusion proofs against one checkpoint, built once per entry."""

    def __init__(self, index: VerdictIndex, size: int, reader: HashReader) -> None:
        self.index = index
        self.size = size
        self.reader = reader
        self._cache: dict[LogRef, dict[str, Any]] = {}

    def item(self, ref: LogRef, entry: bytes | None = None) -> dict[str, Any]:
        got = self._cache.get(ref)
        if got is None:
            if ref.log is not None:
                raise CheckFailed(f"cannot prove an entry of another log ({ref.log})")
            if ref.index >= self.size:
                raise CheckFailed(
                    f"log entry {ref.index} is not covered by the checkpoint (size {self.size})"
                )
            entry = entry if entry is not None else self.index.entry(ref)
            if entry is None:
                raise CheckFailed(f"the verdict index has no entry {ref.index}")
            (leaf,) = self.reader.read_hashes([Node(0, ref.index)])
            if leaf != ref.leaf_hash:
                raise CheckFailed(f"log entry {ref.index} is not the entry the index holds")
            hashes = inclusion_proof(ref.index, self.size, self.reader)
            got = {"index": ref.index, "entry": _b64(entry), "hashes": [_b64(h) for h in hashes]}
            self._cache[ref] = got
        return got

    def block(self, refs: Iterable[LogRef]) -> dict[str, Any]:
        return {ref.leaf_hash.hex(): self.item(ref) for ref in refs}


def build_feed(
    index: VerdictIndex, log: Any, *, prefix_len: int, now: datetime
) -> dict[str, bytes]:
    """Every feed file (path → bytes) for ``index`` proven against ``log``'s checkpoint.

    ``log`` is a :class:`provenance.log.log.Log`; the index must have been synced from
    it (it may lag behind, never run ahead).
    """
    tree = log.tree()
    if index.size > tree.size:
        raise CheckFailed(
            f"the verdict index covers {index.size} entries, the log's checkpoint {tree.size}"
        )
    checkpoint = tree.checkpoint.decode("utf-8")
    evidence = _Evidence(index, tree.size, log.hash_reader(tree.size))
    shards: dict[str, dict[str, Any]] = defaultdict(dict)
    refs: dict[str, list[LogRef]] = defaultdict(list)
    for sha in index.apks():
        record = index.apk_record(sha)
        if record is None:
            continue
        path = apk_shard(sha, prefix_len)
        shards[path][sha] = record.to_dict()
        refs[path].extend(record.refs())
        refs[path].extend(record.signer_refs())  # the registrations: who may sign it
    apk_count = sum(len(s) for s in shards.values())
    for package in index.packages():
        package_record = index.package_record(package)
        if package_record is None:
            continue
        path = package_shard(package, prefix_len)
        shards[path][package] = package_record.to_dict()
        refs[path].extend(package_record.refs())
    package_count = sum(len(s) for s in shards.values()) - apk_count
    out: dict[str, bytes] = {}
    for path, records in shards.items():
        kind = "apk" if path.startswith("feed/apk/") else "package"
        out[path] = canonical_json(
            {
                "format": SHARD_FORMAT,
                "kind": kind,
                "prefix": path.rsplit("/", 1)[1].removesuffix(".json"),
                "checkpoint": checkpoint,
                "records": records,
                "evidence": evidence.block(refs[path]),
            }
        )
    registrations = [
        evidence.item(LogRef.to_entry(i, e), e)
        for i, e in index.actor_registrations()
        if i < tree.size
    ]
    out[REGISTRY] = canonical_json(
        {"format": REGISTRY_FORMAT, "checkpoint": checkpoint, "entries": registrations}
    )
    out[INFO] = canonical_json(
        {
            "format": INFO_FORMAT,
            "prefix_len": prefix_len,
            "generated_at": format_time(now),
            "log": {"origin": log.origin, "size": tree.size, "indexed": index.size},
            "counts": {"apks": apk_count, "packages": package_count},
        }
    )
    return out


def publish_index(repo: Any, index: VerdictIndex, log: Any, *, now: datetime | None = None) -> Any:
    """Sync ``index`` from ``log``, build the feed and publish it in ``repo``
    (a :class:`provenance.feed.repository.FeedRepository`); returns the PublishResult."""
    from datetime import UTC

    now = now or datetime.now(UTC).replace(microsecond=0)
    index.sync(log)
    return repo.publish(build_feed(index, log, prefix_len=repo.prefix_len, now=now), now=now)
