"""The trust roots a terminal needs, as the feed publishes them.

* ``roots/log.vkey`` -- the log's note verifier key;
* ``roots/witness.policy`` -- the tlog-policy (the log line plus witnesses and quorum)
  every checkpoint behind a verdict must satisfy;
* ``roots/registry-root.json`` -- the actor registry's root keys
  (``apkprov-registry-root/1``, the format ``apkprov trace --registry`` reads); the
  registry itself is rebuilt from logged registrations (``feed/registry.json``);
* ``roots/verdict-key.pem`` -- the service's verdict-signing key, for terminals that
  also ask the online verdict API.

They change rarely and matter most, so the offline top-level targets key signs them;
the online feed key cannot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from provenance.errors import InputError, NoteError, PolicyError, ProvenanceError
from provenance.feed.layout import ROOTS
from provenance.log.note import parse_verifier_key
from provenance.log.policy import Policy, parse_policy
from provenance.statements import ActorKey, load_public_key
from provenance.statements.keys import PublicKey, key_id, public_key_b64
from provenance.statements.schema import format_time, parse_time

__all__ = ["REGISTRY_ROOT_FORMAT", "TrustRoots", "registry_root_document"]

REGISTRY_ROOT_FORMAT = "apkprov-registry-root/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX = 1 << 20


def registry_root_document(keys: list[PublicKey]) -> bytes:
    """The registry root keys as JSON, each valid from the beginning of time."""
    doc = {
        "format": REGISTRY_ROOT_FORMAT,
        "root_keys": [
            {"public_key": public_key_b64(k), "valid_from": format_time(_EPOCH), "keyid": key_id(k)}
            for k in keys
        ],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX:
            raise InputError(f"{path} is larger than {_MAX} bytes")
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


@dataclass(frozen=True)
class TrustRoots:
    """The four trust-root files, validated."""

    log_vkey: str
    policy: bytes
    registry_root: bytes
    verdict_key: bytes

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def build(
        cls,
        log_vkey: str,
        registry_keys: list[Path],
        verdict_key: Path,
        policy: Path | None = None,
    ) -> TrustRoots:
        """From files; without a policy, one that trusts the log and asks no witness."""
        vkey = log_vkey.strip()
        if Path(vkey).is_file():
            vkey = _read(Path(vkey)).decode("ascii", "replace").strip()
        policy_text = _read(policy) if policy else f"log {vkey}\nquorum none\n".encode()
        if not registry_keys:
            raise InputError("give at least one actor registry root key (--registry-root)")
        try:
            keys = [load_public_key(_read(p)) for p in registry_keys]
            verdict = load_public_key(_read(verdict_key))
        except ProvenanceError as e:
            raise InputError(f"trust roots: {e}") from None
        pem = verdict.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(vkey, policy_text, registry_root_document(keys), pem)

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> TrustRoots:
        """From the target files (as the terminal downloads them)."""
        try:
            return cls(
                files[ROOTS["log"]].decode("ascii").strip(),
                files[ROOTS["policy"]],
                files[ROOTS["registry"]],
                files[ROOTS["verdict_key"]],
            )
        except (KeyError, UnicodeDecodeError) as e:
            raise InputError(f"trust roots are incomplete or malformed: {e}") from None

    def files(self) -> dict[str, bytes]:
        return {
            ROOTS["log"]: (self.log_vkey + "\n").encode(),
            ROOTS["policy"]: self.policy,
            ROOTS["registry"]: self.registry_root,
            ROOTS["verdict_key"]: self.verdict_key,
        }

    def check(self) -> None:
        """Every file parses, and the policy trusts the log."""
        try:
            log = parse_verifier_key(self.log_vkey)
            policy = self.witness_policy()
        except (NoteError, PolicyError) as e:
            raise InputError(f"trust roots: {e}") from None
        if not policy.log_verifiers(log.name):
            raise InputError(f"trust roots: the witness policy does not list the log {log.name}")
        self.root_keys()
        self.verdict_public_key()

    @property
    def origin(self) -> str:
        return parse_verifier_key(self.log_vkey).name

    def witness_policy(self) -> Policy:
        return parse_policy(self.policy)

    def root_keys(self) -> list[ActorKey]:
        """The registry root keys with their validity windows."""
        try:
            doc = json.loads(self.registry_root)
            if doc.get("format") != REGISTRY_ROOT_FORMAT or not doc.get("root_keys"):
                raise InputError(f"registry root document is not {REGISTRY_ROOT_FORMAT}")
            out = []
            for k in doc["root_keys"]:
                until = k.get("valid_until")
                key = ActorKey(
                    load_public_key(k["public_key"]),
                    parse_time(k["valid_from"]),
                    parse_time(until) if until else None,
                )
                if "keyid" in k and k["keyid"] != key.key_id:
                    raise InputError("registry root key: keyid does not match the key")
                out.append(key)
            return out
        except (ValueError, KeyError, TypeError, AttributeError, ProvenanceError) as e:
            raise InputError(f"trust roots: registry root document: {e}") from None

    def verdict_public_key(self) -> PublicKey:
        try:
            return load_public_key(self.verdict_key)
        except ProvenanceError as e:
            raise InputError(f"trust roots: verdict key: {e}") from None
