"""The publishing side: a TUF repository built with python-tuf's Metadata API.

Roles and keys (Ed25519, threshold 1 by default; see docs/terminal.md):

=========  ==========  ================================  =========================
role       key         signs                             default expiry
=========  ==========  ================================  =========================
root       offline     the keys of the top-level roles   365 days
targets    offline     trust roots + the delegation      90 days
feed       online      ``feed/*``: shards, registry      12 hours
snapshot   online      versions of targets and feed      12 hours
timestamp  online      the snapshot version              6 hours
=========  ==========  ================================  =========================

Consistent snapshots are on: metadata is written as ``<version>.<role>.json`` and
targets as ``<dir>/<sha256>.<name>``, and ``timestamp.json`` is replaced last, so a
terminal refreshing while a publish runs always sees one complete state, and any
static HTTP server can serve ``public/``. Everything older than the previous state
is removed after a publish.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import (  # type: ignore[attr-defined]
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from provenance.errors import InputError
from provenance.feed.keys import generate_key, load_key
from provenance.feed.layout import (
    FEED_PATHS,
    FEED_ROLE,
    METADATA_DIR,
    ONLINE_ROLES,
    TARGETS_DIR,
)
from provenance.feed.roots import TrustRoots

__all__ = ["CONFIG_FILE", "Expiry", "FeedRepository", "PublishResult"]

CONFIG_FILE = "feed.json"
_FORMAT = "apkprov-feed-repo/1"
_SERIALIZER = JSONSerializer(compact=True)


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata stays valid after signing, in seconds."""

    root: int = 365 * 86400
    targets: int = 90 * 86400
    feed: int = 12 * 3600
    snapshot: int = 12 * 3600
    timestamp: int = 6 * 3600

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 60:
                raise InputError(f"expiry of {name} must be at least 60 seconds")

    def of(self, role: str) -> timedelta:
        return timedelta(seconds=int(getattr(self, role)))


@dataclass(frozen=True)
class PublishResult:
    """What one publish wrote."""

    feed_version: int
    snapshot_version: int
    timestamp_version: int
    targets: int
    new_files: int
    expires: datetime


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _target_file(public: Path, path: str, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    directory, _, name = path.rpartition("/")
    return public / TARGETS_DIR / directory / f"{digest}.{name}"


class FeedRepository:
    """A TUF repository in ``directory``: ``public/`` is served, ``keys/`` is not."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        config_path = self.directory / CONFIG_FILE
        try:
            config = json.loads(config_path.read_text("utf-8"))
        except OSError as e:
            raise InputError(f"{config_path}: not a feed repository ({e.strerror or e})") from None
        except ValueError as e:
            raise InputError(f"{config_path}: {e}") from None
        if config.get("format") != _FORMAT:
            raise InputError(f"{config_path}: not an {_FORMAT} configuration")
        self.expiry = Expiry(**config["expiry"])
        self.prefix_len = int(config["prefix_len"])
        if not 1 <= self.prefix_len <= 3:
            raise InputError("prefix_len must be 1, 2 or 3 hex digits")

    @property
    def public(self) -> Path:
        """The directory to serve."""
        return self.directory / "public"

    @property
    def keys(self) -> Path:
        """Online keys (mode 0600; never served)."""
        return self.directory / "keys"

    # --------------------------------------------------------------- creation

    @classmethod
    def init(
        cls,
        directory: str | os.PathLike[str],
        offline_dir: str | os.PathLike[str],
        roots: TrustRoots,
        *,
        expiry: Expiry | None = None,
        prefix_len: int = 2,
        now: datetime | None = None,
    ) -> FeedRepository:
        """Create keys, root and targets metadata, and an empty first feed.

        Root and targets keys go to ``offline_dir`` (move it off this machine once
        done); the online keys to ``directory/keys``.
        """
        d, offline = Path(directory), Path(offline_dir)
        if (d / CONFIG_FILE).exists():
            raise InputError(f"{d} already holds a feed repository")
        if offline.resolve() == d.resolve() or offline.resolve().is_relative_to(d.resolve()):
            raise InputError("the offline key folder must not be inside the repository")
        if not 1 <= prefix_len <= 3:
            raise InputError("--prefix-len must be 1, 2 or 3")
        expiry = expiry or Expiry()
        now = now or _now()
        d.mkdir(parents=True, exist_ok=True)
        signers = {role: generate_key(offline, role) for role in ("root", "targets")}
        signers.update({role: generate_key(d / "keys", role) for role in ONLINE_ROLES})
        config = {"format": _FORMAT, "expiry": asdict(expiry), "prefix_len": prefix_len}
        _write_atomic(d / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())

        root = Root(version=1, expires=now + expiry.of("root"), consistent_snapshot=True)
        for role in ("root", "targets", "snapshot", "timestamp"):
            root.add_key(signers[role].public_key, role)
        repo = cls(d)
        repo._write_root(root, [signers["root"]])
        repo._write_targets(1, roots, signers["targets"], signers[FEED_ROLE], now)
        repo.publish({}, now=now)
        return repo

    def _write_root(self, root: Root, signers: list[CryptoSigner]) -> None:
        md = Metadata(root)
        for s in signers:
            md.sign(s, append=True)
        data = md.to_bytes(_SERIALIZER)
        meta = self.public / METADATA_DIR
        _write_atomic(meta / f"{root.version}.root.json", data)
        _write_atomic(meta / "root.json", data)

    def _write_targets(
        self,
        version: int,
        roots: TrustRoots,
        signer: CryptoSigner,
        feed_key: Any,
        now: datetime,
    ) -> None:
        targets = Targets(version=version, expires=now + self.expiry.of("targets"))
        for path, data in roots.files().items():
            targets.targets[path] = TargetFile.from_data(path, data, ["sha256"])
            f = _target_file(self.public, path, data)
            if not f.exists():
                _write_atomic(f, data)
        key = feed_key.public_key if isinstance(feed_key, CryptoSigner) else feed_key
        targets.delegations = Delegations(
            keys={key.keyid: key},
            roles={
                FEED_ROLE: DelegatedRole(FEED_ROLE, [key.keyid], 1, True, paths=list(FEED_PATHS))
            },
        )
        md = Metadata(targets)
        md.sign(signer)
        _write_atomic(
            self.public / METADATA_DIR / f"{version}.targets.json", md.to_bytes(_SERIALIZER)
        )

    # ------------------------------------------------------------------ state

    def _load(self, name: str) -> Metadata[Any]:
        path = self.public / METADATA_DIR / name
        try:
            return Metadata.from_bytes(path.read_bytes())
        except OSError as e:
            raise InputError(f"feed repository is incomplete: {path}: {e.strerror or e}") from None

    def current(self) -> dict[str, Metadata[Any]]:
        """The published metadata of every role, following timestamp → snapshot."""
        ts = self._load("timestamp.json")
        assert isinstance(ts.signed, Timestamp)
        snap = self._load(f"{ts.signed.snapshot_meta.version}.snapshot.json")
        assert isinstance(snap.signed, Snapshot)
        out: dict[str, Metadata[Any]] = {
            "root": self._load("root.json"),
            "timestamp": ts,
            "snapshot": snap,
        }
        for name, meta in snap.signed.meta.items():
            role = name.removesuffix(".json")
            out[role] = self._load(f"{meta.version}.{role}.json")
        return out

    def _state(self) -> dict[str, int]:
        """Latest versions (zeros before the first publish). The top-level targets
        version is the newest written, which an offline ceremony may have added
        since the last snapshot."""
        targets = max(
            (
                int(p.name.split(".")[0])
                for p in (self.public / METADATA_DIR).glob("*.targets.json")
            ),
            default=1,
        )
        try:
            md = self.current()
        except InputError:
            return {"timestamp": 0, "snapshot": 0, FEED_ROLE: 0, "targets": targets}
        state = {role: m.signed.version for role, m in md.items()}
        state["targets"] = targets
        return state

    # ---------------------------------------------------------------- publish

    def publish(
        self, files: Mapping[str, bytes] | None, *, now: datetime | None = None
    ) -> PublishResult:
        """Sign ``files`` as the new feed (``None``: keep the current feed, re-signed).

        Also the periodic job that keeps the online roles from expiring: run it more
        often than the timestamp expiry.
        """
        now = now or _now()
        state = self._state()
        feed_key = load_key(self.keys, FEED_ROLE)
        if files is None:
            current = self.current()[FEED_ROLE].signed
            assert isinstance(current, Targets)
            feed = Targets(expires=now + self.expiry.of(FEED_ROLE), targets=current.targets)
        else:
            feed = Targets(expires=now + self.expiry.of(FEED_ROLE))
            for path, data in sorted(files.items()):
                if not any(path.startswith(p.split("*")[0]) for p in FEED_PATHS):
                    raise InputError(f"{path} is outside the feed role's paths")
                feed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
        feed.version = state[FEED_ROLE] + 1
        new_files = 0
        for path, data in (files or {}).items():
            f = _target_file(self.public, path, data)
            if not f.exists():
                _write_atomic(f, data)
                new_files += 1
        meta = self.public / METADATA_DIR
        self._sign_write(feed, feed_key, meta / f"{feed.version}.{FEED_ROLE}.json")

        snapshot = Snapshot(
            version=state["snapshot"] + 1,
            expires=now + self.expiry.of("snapshot"),
            meta={
                "targets.json": MetaFile(state["targets"]),
                f"{FEED_ROLE}.json": MetaFile(feed.version),
            },
        )
        self._sign_write(
            snapshot, load_key(self.keys, "snapshot"), meta / f"{snapshot.version}.snapshot.json"
        )
        timestamp = Timestamp(
            version=state["timestamp"] + 1,
            expires=now + self.expiry.of("timestamp"),
            snapshot_meta=MetaFile(snapshot.version),
        )
        self._sign_write(timestamp, load_key(self.keys, "timestamp"), meta / "timestamp.json")
        self._collect_garbage(feed.version, snapshot.version)
        return PublishResult(
            feed.version,
            snapshot.version,
            timestamp.version,
            len(feed.targets),
            new_files,
            now + self.expiry.of("timestamp"),
        )

    @staticmethod
    def _sign_write(signed: Any, signer: CryptoSigner, path: Path) -> None:
        md = Metadata(signed)
        md.sign(signer)
        _write_atomic(path, md.to_bytes(_SERIALIZER))

    def _collect_garbage(self, feed_version: int, snapshot_version: int) -> None:
        """Keep the current and the previous state (a terminal may be mid-refresh)."""
        meta = self.public / METADATA_DIR
        keep: set[Path] = set()
        for role, version in ((FEED_ROLE, feed_version), ("snapshot", snapshot_version)):
            for old in meta.glob(f"*.{role}.json"):
                if int(old.name.split(".")[0]) < version - 1:
                    old.unlink(missing_ok=True)
        for v in (feed_version - 1, feed_version):
            path = meta / f"{v}.{FEED_ROLE}.json"
            if path.exists():
                md = Metadata[Targets].from_bytes(path.read_bytes())
                for t in md.signed.targets.values():
                    directory, _, name = t.path.rpartition("/")
                    keep.add(self.public / TARGETS_DIR / directory / f"{t.hashes['sha256']}.{name}")
        feed_dir = self.public / TARGETS_DIR / "feed"
        for f in feed_dir.rglob("*") if feed_dir.exists() else ():
            if f.is_file() and f not in keep:
                f.unlink(missing_ok=True)

    # --------------------------------------------------------- offline ceremonies

    def set_roots(
        self, offline_dir: str | os.PathLike[str], roots: TrustRoots, *, now: datetime | None = None
    ) -> int:
        """Publish new trust roots (or renew the targets expiry): needs the offline
        targets key. Returns the new targets version."""
        now = now or _now()
        state = self._state()
        signer = load_key(Path(offline_dir), "targets")
        current = self.current()["targets"].signed
        assert isinstance(current, Targets) and current.delegations is not None
        assert current.delegations.keys is not None
        (feed_key,) = current.delegations.keys.values()
        version = state["targets"] + 1
        self._write_targets(version, roots, signer, feed_key, now)
        self.publish(None, now=now)
        return version

    def renew_root(
        self, offline_dir: str | os.PathLike[str], *, now: datetime | None = None
    ) -> int:
        """Sign the next root version (same keys, new expiry) with the offline root key."""
        now = now or _now()
        root_md = self._load("root.json")
        root = root_md.signed
        assert isinstance(root, Root)
        root.version += 1
        root.expires = now + self.expiry.of("root")
        self._write_root(root, [load_key(Path(offline_dir), "root")])
        return root.version

    def rotate_key(
        self, offline_dir: str | os.PathLike[str], role: str, *, now: datetime | None = None
    ) -> str:
        """Replace an online role's key (after a leak, or routinely); returns the new key ID.

        ``snapshot``/``timestamp`` keys are listed in root (signed with the offline
        root key), the ``feed`` key in the targets delegation (offline targets key).
        The old key file is kept as ``keys/retired/<role>.<keyid>.key``; the state is
        re-signed with the new key at once, so terminals stop trusting the old one on
        their next refresh.
        """
        if role not in ONLINE_ROLES:
            raise InputError(f"only online keys rotate here ({', '.join(ONLINE_ROLES)})")
        now = now or _now()
        offline = Path(offline_dir)
        old = load_key(self.keys, role)
        authority = load_key(offline, "root" if role != FEED_ROLE else "targets")
        retired = self.keys / "retired"
        retired.mkdir(exist_ok=True)
        os.replace(self.keys / f"{role}.key", retired / f"{role}.{old.public_key.keyid}.key")
        new = generate_key(self.keys, role)
        if role == FEED_ROLE:
            state = self._state()
            self._write_targets(state["targets"] + 1, self.trust_roots(), authority, new, now)
        else:
            root = self._load("root.json").signed
            assert isinstance(root, Root)
            root.revoke_key(old.public_key.keyid, role)
            root.add_key(new.public_key, role)
            root.version += 1
            root.expires = now + self.expiry.of("root")
            self._write_root(root, [authority])
        self.publish(None, now=now)
        return str(new.public_key.keyid)

    def trust_roots(self) -> TrustRoots:
        """The trust roots currently published."""
        targets = self.current()["targets"].signed
        assert isinstance(targets, Targets)
        files = {}
        for path, t in targets.targets.items():
            f = (
                self.public
                / TARGETS_DIR
                / path.rpartition("/")[0]
                / (f"{t.hashes['sha256']}.{path.rpartition('/')[2]}")
            )
            files[path] = f.read_bytes()
        return TrustRoots.from_files(files)
