"""Shared test material: a small world of actors and one good predicate per type."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    RESTORE,
    SDK_REGISTRATION,
    SHELVING,
    TAKEDOWN,
    Actor,
    ActorKey,
    ActorRegistry,
    KeySigner,
    LogRef,
    RolePolicy,
    Statement,
    make_statement,
    sign_statement,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
POLICY = RolePolicy.default()

APK_SHA = hashlib.sha256(b"an apk").hexdigest()
CERT_SHA = hashlib.sha256(b"a signer certificate").hexdigest()
CERT2_SHA = hashlib.sha256(b"the next signer certificate").hexdigest()
SDK_SHA = hashlib.sha256(b"an sdk archive").hexdigest()
REF = {"index": 7, "leaf_hash": "11" * 32}
REF2 = {"index": 9, "leaf_hash": "22" * 32, "log": "log.example.test/provenance"}

# actor id -> (roles, key algorithm)
ACTORS: dict[str, tuple[frozenset[str], str]] = {
    "regulator": (frozenset({"regulator"}), "ed25519"),
    "store": (frozenset({"platform"}), "ed25519"),
    "other-store": (frozenset({"platform"}), "ecdsa-p256-sha256"),
    "acme": (frozenset({"developer"}), "ecdsa-p256-sha256"),
    "sdkco": (frozenset({"sdk_provider"}), "ed25519"),
    "lab": (frozenset({"inspector"}), "ecdsa-p256-sha256"),
    "isp": (frozenset({"access_provider"}), "ed25519"),
}


@dataclass
class World:
    """A registry with a root and one actor per role, and all their signers."""

    root: KeySigner = field(default_factory=KeySigner.generate)
    signers: dict[str, KeySigner] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry = ActorRegistry([ActorKey(self.root.public_key, T0)])
        self.signers["registry-root"] = self.root
        for actor_id, (roles, alg) in ACTORS.items():
            s = KeySigner.generate(alg)
            self.signers[actor_id] = s
            self.registry.register(
                Actor(actor_id, actor_id.title(), roles, (ActorKey(s.public_key, T0),)), T0
            )

    def sign(self, statement: Statement, *actor_ids: str) -> bytes:
        return sign_statement(statement, [self.signers[a] for a in actor_ids]).to_json()


def predicate(ptype: str) -> dict[str, Any]:
    """A fresh, valid predicate of ``ptype`` (without statement_id/issued_at)."""
    return copy.deepcopy(_EXAMPLES[ptype])


def statement(ptype: str, **changes: Any) -> Statement:
    p = predicate(ptype)
    p.update(changes)
    return make_statement(ptype, p, issued_at=NOW)


SIGNER_OF = {
    ACTOR_REGISTRATION: "regulator",
    DEVELOPER_REGISTRATION: "store",
    SDK_REGISTRATION: "sdkco",
    RELEASE: "acme",
    SHELVING: "store",
    INSPECTION: "lab",
    TAKEDOWN: "regulator",
    RESTORE: "regulator",
}

_NEW_KEY = KeySigner.generate("ecdsa-p256-sha256")

_EXAMPLES: dict[str, dict[str, Any]] = {
    ACTOR_REGISTRATION: {
        "registrar": "regulator",
        "actor": {
            "id": "newstore",
            "name": "New Store Ltd",
            "roles": ["platform"],
            "contact": {"email": "ops@newstore.example", "website": "https://newstore.example"},
        },
        "keys": [ActorKey(_NEW_KEY.public_key, T0, T0 + timedelta(days=365)).to_dict()],
    },
    DEVELOPER_REGISTRATION: {
        "verified_by": "store",
        "developer": "acme",
        "identity": {
            "kind": "organization",
            "legal_name": "ACME Software Co., Ltd.",
            "registration_number": "91310000MA1K000000",
            "country": "CN",
            "verification_method": "business licence + legal representative video call",
            "verified_at": "2026-02-01T09:30:00Z",
        },
        "contact": {"email": "dev@acme.example", "phone": "+86 21 5555 0100"},
        "filing": {"number": "沪ICP备2026000001号-1A", "authority": "Shanghai CA"},
        "signer_certificates": [
            {"sha256": CERT_SHA, "packages": ["com.acme.app"]},
            {"sha256": CERT2_SHA},
        ],
        "rotations": [
            {
                "from_sha256": CERT_SHA,
                "to_sha256": CERT2_SHA,
                "at": "2026-02-15T00:00:00Z",
                "proof": "apk-lineage",
            }
        ],
        "build_identities": [
            {"issuer": "https://token.actions.githubusercontent.com", "identity": "https://ci"}
        ],
    },
    SDK_REGISTRATION: {
        "provider": "sdkco",
        "sdk": {
            "id": "com.sdkco:analytics",
            "name": "SDKCo Analytics",
            "version": "4.2.0",
            "developer": "SDKCo Ltd.",
            "artifact_sha256": SDK_SHA,
            "package_prefixes": ["com.sdkco.analytics"],
        },
        "functions": [{"name": "usage statistics", "description": "Counts screen views."}],
        "personal_information": [
            {
                "category": "identifiers",
                "items": ["Android ID", "OAID"],
                "purpose": "de-duplicate devices in statistics",
                "required": True,
                "shared_with": ["SDKCo cloud"],
                "retention": "180 days",
            }
        ],
        "privacy_policy": {"url": "https://sdkco.example/privacy", "sha256": SDK_SHA},
    },
    RELEASE: {
        "developer": "acme",
        "developer_registration": REF,
        "apk": {"sha256": APK_SHA, "size": 123456},
        "package": "com.acme.app",
        "version_code": 42,
        "version_name": "4.2 (beta)",
        "signer_certificates": [CERT2_SHA],
        "verification": {
            "verified": True,
            "schemes": ["v2", "v3"],
            "verifier": "apkprov 0.1.0",
            "min_sdk": 24,
        },
    },
    SHELVING: {
        "platform": "store",
        "release": REF,
        "apk": {"sha256": APK_SHA},
        "package": "com.acme.app",
        "version_code": 42,
        "listing": {
            "id": "com.acme.app",
            "url": "https://store.example/app/com.acme.app",
            "shelved_at": "2026-03-01T08:00:00Z",
        },
        "metadata": {
            "app_name": "ACME App",
            "developer_name": "ACME Software Co., Ltd.",
            "functions": [{"name": "notes", "description": "Write and sync notes."}],
            "permissions": [
                {"name": "android.permission.CAMERA", "purpose": "scan documents into notes"}
            ],
            "sdks": [
                {"id": "com.sdkco:analytics", "name": "SDKCo Analytics", "registration": REF2}
            ],
            "privacy_policy": {"url": "https://acme.example/privacy"},
            "filing_number": "沪ICP备2026000001号-1A",
        },
        "reviewer": {"id": "rev-0042", "name": "A. Reviewer"},
    },
    INSPECTION: {
        "inspector": "lab",
        "target": REF,
        "apk": {"sha256": APK_SHA},
        "package": "com.acme.app",
        "facts": {"sha256": SDK_SHA, "tool": "apkprov inspect 0.1.0"},
        "findings": [
            {
                "id": "PERM-UNDECLARED",
                "severity": "medium",
                "summary": "READ_CONTACTS is requested but not listed",
                "evidence": ["manifest uses-permission android.permission.READ_CONTACTS"],
            }
        ],
        "verdict": "warn",
    },
    TAKEDOWN: {
        "authority": "regulator",
        "scope": {"kind": "version", "package": "com.acme.app", "apk_sha256": APK_SHA},
        "reason": {"code": "privacy", "text": "collects contacts without consent"},
        "evidence": [REF],
        "effective_at": "2026-03-01T12:00:00Z",
    },
    RESTORE: {
        "authority": "regulator",
        "scope": {"kind": "version", "package": "com.acme.app", "apk_sha256": APK_SHA},
        "takedown": REF,
        "reason": {"code": "resolved", "text": "fixed in a re-release"},
        "evidence": [REF2],
        "effective_at": "2026-03-05T00:00:00Z",
    },
}


def logref(d: dict[str, Any]) -> LogRef:
    return LogRef.from_dict(d)
