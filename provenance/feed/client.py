"""The terminal: refresh the feed with python-tuf's ngclient, check an APK against it.

``FeedClient(cache, url).check(apk)`` refreshes the TUF metadata (root rotations,
timestamp, snapshot, targets, the delegated feed role -- with python-tuf's rollback,
freeze and signature checks), downloads the trust roots, the registry and the two
shards the APK needs (cached by hash, so an unchanged shard is not downloaded
again), checks the evidence (:mod:`provenance.feed.evidence`) and decides with the
same functions as the service (:mod:`provenance.verdicts.decide`).

``offline=True`` never touches the network: the same ngclient workflow runs over
the cache (a fetcher that serves cached metadata), so expired metadata is refused
exactly as online, and only shards downloaded before can be used.

python-tuf's exceptions become :class:`FeedError` subclasses with a message that
says what happened (rollback, freeze, tampering) -- the check ran and the feed
failed it, exit code 1 -- or :class:`FeedUnavailable` (no network, no cache: exit 2).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from provenance.errors import CheckFailed, InputError
from provenance.feed.content import INFO_FORMAT, SHARD_FORMAT
from provenance.feed.evidence import EvidenceError, EvidenceVerifier, load_document
from provenance.feed.layout import INFO, REGISTRY, ROOTS, apk_shard, package_shard
from provenance.feed.roots import TrustRoots
from provenance.statements import LogRef
from provenance.verdicts.decide import Decision, decide_package
from provenance.verdicts.model import Query, VerdictKind
from provenance.verdicts.records import ApkRecord, PackageRecord

__all__ = [
    "FeedClient",
    "FeedError",
    "FeedFrozen",
    "FeedRollback",
    "FeedTampered",
    "FeedUnavailable",
    "LocalApk",
    "TerminalResult",
    "default_cache",
    "read_apk",
]


class FeedError(CheckFailed):
    """The feed failed a check: it must not be used (exit code 1)."""


class FeedRollback(FeedError):
    """The server offered older metadata than the terminal already trusts."""


class FeedFrozen(FeedError):
    """The newest metadata available has expired (freeze attack, or a stopped publisher)."""


class FeedTampered(FeedError):
    """Metadata or a file does not match its signatures or hashes."""


class FeedUnavailable(InputError):
    """No feed to check against: the server cannot be reached and/or nothing is cached."""


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/apkprov/feed`` (``~/.cache/apkprov/feed``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "apkprov" / "feed"


# ------------------------------------------------------------------------ the APK


@dataclass(frozen=True)
class LocalApk:
    """What the terminal sees in the file itself."""

    path: str
    sha256: str
    package: str | None
    version_code: int | None
    certs: tuple[str, ...]
    verified: bool
    problems: tuple[str, ...]


def read_apk(path: str | os.PathLike[str]) -> LocalApk:
    """Hash the file, read its manifest, verify its signature (ApkFormatError if not an APK)."""
    from provenance.apk.manifest import parse_manifest
    from provenance.apk.verify import read_manifest, verify_apk
    from provenance.apk.zip import ApkFile

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise InputError(f"cannot read {os.fspath(path)}: {e.strerror or e}") from None
    with ApkFile(path) as apk:
        manifest = parse_manifest(read_manifest(apk))
    result = verify_apk(path)
    problems = tuple(str(e) for e in result.all_errors()[:3])
    return LocalApk(
        os.fspath(path),
        h.hexdigest(),
        manifest.package,
        manifest.version_code,
        tuple(c.sha256 for c in result.signer_certs),
        result.verified,
        problems,
    )


# --------------------------------------------------------------------- the result


@dataclass(frozen=True)
class TerminalResult:
    """The answer for one APK, and what it rests on."""

    apk: LocalApk
    verdict: VerdictKind
    reasons: tuple[str, ...]
    evidence: tuple[LogRef, ...]
    source: str  # feed-file | feed-package | none
    feed: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 trusted/unknown, 1 a warning."""
        return 1 if self.verdict.warning else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.apk.path,
            "sha256": self.apk.sha256,
            "package": self.apk.package,
            "version_code": self.apk.version_code,
            "signer_certificates": list(self.apk.certs),
            "signature_verified": self.apk.verified,
            "verdict": self.verdict.value,
            "warning": self.verdict.warning,
            "reasons": list(self.reasons),
            "evidence": [r.to_dict() for r in self.evidence],
            "source": self.source,
            "feed": self.feed,
        }

    def render(self) -> str:
        """The warning (or the all-clear) as a person reads it."""
        a = self.apk
        who = f"{a.package or '?'} version {a.version_code if a.version_code is not None else '?'}"
        if self.verdict.warning:
            head = f"WARNING: {self.verdict.value.replace('_', ' ')} -- do not install or run {who}"
        elif self.verdict is VerdictKind.TRUSTED:
            head = f"OK: {who} is trusted"
        else:
            head = f"NOTE: {who} is unknown to the feed -- nothing vouches for it"
        lines = [head, f"  file {a.path}", f"  sha256 {a.sha256}"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.evidence:
            idx = ", ".join(str(r.index) for r in self.evidence[:10])
            lines.append(f"  evidence: log entries {idx} (inclusion proven, signatures checked)")
        if self.feed:
            lines.append(
                f"  feed: {self.feed.get('origin')} at size {self.feed.get('log_size')}, "
                f"generated {self.feed.get('generated_at')}, witnesses "
                f"{', '.join(self.feed.get('witnesses', [])) or 'none required'}"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------- the fetching


class _CacheFetcher(FetcherInterface):
    """Serves the cached metadata as if it were the server (offline mode).

    New root versions are "not found" (nothing to rotate to), everything else is the
    cached copy, so ngclient's own checks -- including expiry -- run unchanged.
    """

    def __init__(self, metadata_dir: Path) -> None:
        self.metadata_dir = metadata_dir

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = url.rsplit("/", 1)[-1]
        first, _, rest = name.partition(".")
        if first.isdigit():
            if rest == "root.json":
                raise tuf_errors.DownloadHTTPError("offline: no newer root", 404)
            name = rest
        path = self.metadata_dir / name
        try:
            data = path.read_bytes()
        except OSError:
            raise tuf_errors.DownloadError(f"{name} is not in the cache") from None
        return iter([data])


@contextlib.contextmanager
def _tuf_errors(url: str, offline: bool) -> Iterator[None]:
    """python-tuf's exceptions as FeedError messages a person can act on."""
    try:
        yield
    except tuf_errors.ExpiredMetadataError as e:
        raise FeedFrozen(
            f"the feed has expired ({e}): its publisher stopped signing, or someone is "
            "replaying an old feed to hide newer warnings (freeze attack); not using it"
        ) from None
    except tuf_errors.EqualVersionNumberError as e:
        raise FeedTampered(f"the feed repeats a version with other content: {e}") from None
    except tuf_errors.BadVersionNumberError as e:
        raise FeedRollback(
            f"the feed offers older metadata than this terminal already has ({e}): "
            "a rollback attack, or a broken mirror; not using it"
        ) from None
    except tuf_errors.UnsignedMetadataError as e:
        raise FeedTampered(
            f"feed metadata is not signed by the trusted keys ({e}): tampered; not using it"
        ) from None
    except tuf_errors.LengthOrHashMismatchError as e:
        raise FeedTampered(
            f"a feed file does not match its signed hash or length ({e}): tampered; not using it"
        ) from None
    except tuf_errors.DownloadLengthMismatchError as e:
        raise FeedTampered(f"a feed file is longer than its signed length: {e}") from None
    except tuf_errors.RepositoryError as e:
        raise FeedTampered(f"the feed's metadata is invalid: {e}") from None
    except tuf_errors.DownloadError as e:
        if offline:
            raise FeedUnavailable(
                f"the cached feed is incomplete ({e}): refresh once with network access"
            ) from None
        raise FeedUnavailable(
            f"cannot download the feed from {url}: {e} (use --offline to check against "
            "the cached feed)"
        ) from None


class FeedClient:
    """A terminal's view of one feed, cached in ``cache`` (metadata/ and targets/)."""

    def __init__(
        self,
        cache: str | os.PathLike[str] | None = None,
        url: str | None = None,
        *,
        offline: bool = False,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.cache = Path(cache) if cache is not None else default_cache()
        self.offline = offline
        meta = self.cache / "metadata"
        config_path = self.cache / "feed.json"
        config: dict[str, Any] = {}
        if config_path.exists():
            with contextlib.suppress(ValueError, OSError):
                config = json.loads(config_path.read_text("utf-8"))
        self.url = (url or config.get("url") or "").rstrip("/")
        if not self.url:
            raise InputError("no feed URL: give --feed-url (it is remembered in the cache)")
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"feed URL {self.url!r} must start with http:// or https://")
        meta.mkdir(parents=True, exist_ok=True)
        (self.cache / "targets").mkdir(exist_ok=True)
        if not (meta / "root.json").exists():
            if root is None:
                raise InputError(
                    "this terminal has no trusted root yet: give --root ROOT.json (the feed's "
                    "1.root.json, obtained out of band)"
                )
            shutil.copyfile(root, meta / "root.json")
        if config.get("url") != self.url:
            config_path.write_text(json.dumps({"url": self.url}) + "\n", "utf-8")
        fetcher = _CacheFetcher(meta) if offline else None
        with _tuf_errors(self.url, offline):
            self.updater = Updater(
                str(meta),
                self.url + "/metadata/",
                str(self.cache / "targets"),
                self.url + "/targets/",
                fetcher=fetcher,
            )
        self._refreshed = False
        self._roots: TrustRoots | None = None
        self._verifier: EvidenceVerifier | None = None
        self._info: dict[str, Any] | None = None

    def refresh(self) -> None:
        """The TUF refresh (once per client)."""
        if not self._refreshed:
            with _tuf_errors(self.url, self.offline):
                self.updater.refresh()
            self._refreshed = True

    def target(self, path: str) -> bytes | None:
        """A target's verified bytes; None if the (signed) feed has no such target."""
        self.refresh()
        with _tuf_errors(self.url, self.offline):
            info = self.updater.get_targetinfo(path)
            if info is None:
                return None
            cached = self.updater.find_cached_target(info)
            if cached is None:
                if self.offline:
                    raise FeedUnavailable(
                        f"{path} of the current feed is not cached: check once with network access"
                    )
                cached = self.updater.download_target(info)
        return Path(cached).read_bytes()

    def _required(self, path: str) -> bytes:
        data = self.target(path)
        if data is None:
            raise FeedTampered(f"the feed has no {path}")
        return data

    @property
    def roots(self) -> TrustRoots:
        if self._roots is None:
            self._roots = TrustRoots.from_files({p: self._required(p) for p in ROOTS.values()})
        return self._roots

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            try:
                self._info = load_document(self._required(INFO), INFO_FORMAT)
            except EvidenceError as e:
                raise FeedTampered(str(e)) from None
            if self._info.get("prefix_len") not in (1, 2, 3):
                raise FeedTampered("feed info has no valid prefix length")
        return self._info

    @property
    def verifier(self) -> EvidenceVerifier:
        if self._verifier is None:
            verifier = EvidenceVerifier(self.roots)
            verifier.load_registry(self._required(REGISTRY))
            self._verifier = verifier
        return self._verifier

    def _shard(self, path: str, key: str) -> tuple[dict[str, Any], Any] | None:
        data = self.target(path)
        if data is None:
            return None
        shard = load_document(data, SHARD_FORMAT)
        records = shard.get("records")
        if not isinstance(records, dict):
            raise EvidenceError(f"{path} has no records")
        record = records.get(key)
        return (shard, record) if record is not None else None

    def check(self, apk: str | os.PathLike[str], now: datetime | None = None) -> TerminalResult:
        """Check one APK file against the feed."""
        local = read_apk(apk)
        return self.check_local(local, now)

    def check_local(self, local: LocalApk, now: datetime | None = None) -> TerminalResult:
        """Check what :func:`read_apk` found against the feed."""
        now = now or datetime.now(UTC).replace(microsecond=0)
        n = int(self.info["prefix_len"])
        verifier = self.verifier
        decision: Decision | None = None
        source = "none"
        found = self._shard(apk_shard(local.sha256, n), local.sha256)
        if found is not None:
            record = verifier.apk_record(found[0], ApkRecord.from_dict(found[1]), now)
            from provenance.verdicts.decide import decide_apk

            decision, source = decide_apk(record, now), "feed-file"
        elif local.package is not None and local.certs:
            found = self._shard(package_shard(local.package, n), local.package)
            if found is not None:
                record_p = verifier.package_record(found[0], PackageRecord.from_dict(found[1]))
                query = Query(
                    package=local.package,
                    cert_sha256=sorted(local.certs)[0],
                    version_code=local.version_code,
                )
                decision, source = decide_package(record_p, query, now), "feed-package"
        if decision is None:
            who = local.package or "this file"
            decision = Decision(
                VerdictKind.UNKNOWN, (f"The feed knows nothing about {who} or this file.",), ()
            )
        kind, reasons = decision.kind, list(decision.reasons)
        if not local.verified:
            detail = "; ".join(local.problems) or "no valid signature"
            reasons.insert(0, f"The APK's signature does not verify ({detail}).")
            if not kind.warning:
                kind = VerdictKind.COUNTERFEIT
                reasons.insert(1, "An APK that does not verify cannot come from its developer.")
        info = self.info
        feed = {
            "origin": verifier.origin,
            "log_size": info.get("log", {}).get("size"),
            "generated_at": info.get("generated_at"),
            "witnesses": list(verifier.witnessed),
            "offline": self.offline,
        }
        return TerminalResult(local, kind, tuple(reasons), decision.evidence, source, feed)
