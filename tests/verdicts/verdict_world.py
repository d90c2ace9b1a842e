"""A real log with real actors and real APKs, for the verdict and feed tests.

Statements go through ``accept`` (signatures, roles, replay rule) before they are
appended, exactly as the service does, and every checkpoint is cosigned by two
witnesses, so proofs built from this log satisfy a 2-of-2 witness policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from provenance.log.log import Log
from provenance.log.note import CosignatureV1Signer, parse_note, sign_note
from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    RESTORE,
    SHELVING,
    TAKEDOWN,
    Actor,
    ActorKey,
    ActorRegistry,
    KeySigner,
    LogRef,
    accept,
    make_statement,
    release_predicate,
    sign_statement,
)
from provenance.statements.schema import format_time

ORIGIN = "log.example.test/apk"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROLES = {
    "regulator": "regulator",
    "store": "platform",
    "acme": "developer",
    "lab": "inspector",
}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class LogWorld:
    """A log in ``root``, a registry, and one signer per actor."""

    root: Path
    witnesses: int = 2
    registry_root: KeySigner = field(default_factory=KeySigner.generate)
    signers: dict[str, KeySigner] = field(default_factory=dict)
    entries: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = Log.create(self.root / "log", ORIGIN, fsync=False)
        self.witness_signers = [
            CosignatureV1Signer.generate(f"witness.example.test/w{i}")
            for i in range(self.witnesses)
        ]
        if self.witness_signers:
            self.log.sequencer.cosigner = lambda note: sign_note(
                parse_note(note), self.witness_signers
            )
        self.registry = ActorRegistry([ActorKey(self.registry_root.public_key, T0)])
        self.signers["registry-root"] = self.registry_root
        self.seen: set[str] = set()
        for actor_id, role in ROLES.items():
            signer = KeySigner.generate()
            self.signers[actor_id] = signer
            actor = Actor(
                actor_id, actor_id.title(), frozenset({role}), (ActorKey(signer.public_key, T0),)
            )
            pred = actor.registration("registry-root")
            self.append(ACTOR_REGISTRATION, pred, "registry-root")

    # ------------------------------------------------------------------ policy

    def policy_text(self, quorum: int | None = None) -> str:
        lines = [f"log {self.log.config.vkey}"]
        for i, w in enumerate(self.witness_signers):
            lines.append(f"witness W{i} {w.vkey}")
        if self.witness_signers:
            k = quorum if quorum is not None else len(self.witness_signers)
            names = " ".join(f"W{i}" for i in range(len(self.witness_signers)))
            lines.append(f"group G {k} {names}")
            lines.append("quorum G")
        else:
            lines.append("quorum none")
        return "\n".join(lines) + "\n"

    def root_keys_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.registry_root.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --------------------------------------------------------------- appending

    def append(self, ptype: str, predicate: dict[str, Any], signer: str) -> LogRef:
        statement = make_statement(ptype, predicate)
        body = sign_statement(statement, [self.signers[signer]]).to_json()
        accepted = accept(body, self.registry, self.seen)
        index = self.log.sequencer.append(accepted.entry)
        self.seen.add(accepted.statement_id)
        if ptype == ACTOR_REGISTRATION:
            self.registry.apply(accepted)
        self.entries.append(accepted.entry)
        return LogRef.to_entry(index, accepted.entry)

    def integrate(self) -> None:
        self.log.sequencer.integrate()

    def add_actor(self, actor_id: str, role: str) -> None:
        """Register another actor (e.g. a second developer) with a fresh key."""
        signer = KeySigner.generate()
        self.signers[actor_id] = signer
        actor = Actor(
            actor_id, actor_id.title(), frozenset({role}), (ActorKey(signer.public_key, T0),)
        )
        self.append(ACTOR_REGISTRATION, actor.registration("registry-root"), "registry-root")

    def register_developer(
        self, certs: list[str], package: str | None, developer: str = "acme"
    ) -> LogRef:
        """The store verifies ``developer``; ``package=None`` names no packages."""
        packages = {"packages": [package]} if package is not None else {}
        return self.append(
            DEVELOPER_REGISTRATION,
            {
                "verified_by": "store",
                "developer": developer,
                "identity": {
                    "kind": "organization",
                    "legal_name": f"{developer.title()} Software",
                    "country": "DE",
                    "verification_method": "business register",
                    "verified_at": format_time(T0),
                },
                "contact": {"email": f"dev@{developer}.example"},
                "signer_certificates": [{"sha256": c, **packages} for c in certs],
                "rotations": [],
            },
            "store",
        )

    def release(
        self,
        apk: Path,
        dev_ref: LogRef,
        developer: str = "acme",
        *,
        cert: str | None = None,
    ) -> tuple[LogRef, dict[str, Any]]:
        """``developer`` releases ``apk``; with ``cert``, as if that certificate had
        signed it (another file: the digest is derived from the certificate)."""
        pred = release_predicate(apk, developer=developer, developer_registration=dev_ref)
        if cert is not None:
            pred["signer_certificates"] = [cert]
            digest = hashlib.sha256(pred["apk"]["sha256"].encode() + bytes.fromhex(cert))
            pred["apk"] = {**pred["apk"], "sha256": digest.hexdigest()}
        return self.append(RELEASE, pred, developer), pred

    def shelve(
        self, release_ref: LogRef, release: dict[str, Any], sdks: Sequence[str] = ()
    ) -> LogRef:
        return self.append(
            SHELVING,
            {
                "platform": "store",
                "release": release_ref.to_dict(),
                "apk": {"sha256": release["apk"]["sha256"]},
                "package": release["package"],
                "version_code": release["version_code"],
                "listing": {"id": release["package"], "shelved_at": format_time(now())},
                "metadata": {
                    "app_name": "Polite Droid",
                    "developer_name": "ACME Software",
                    "functions": [{"name": "silence", "description": "Mutes the phone."}],
                    "permissions": [],
                    "sdks": [{"id": s, "name": s} for s in sdks],
                    "privacy_policy": {"url": "https://acme.example/privacy"},
                },
                "reviewer": {"id": "rev-1"},
            },
            "store",
        )

    def inspect(
        self, target: LogRef, sha: str, package: str, kind: str | None, summary: str = ""
    ) -> LogRef:
        findings = []
        if kind is not None:
            findings.append(
                {"id": f"verdict:{kind}", "severity": "critical", "summary": f"Risk verdict {kind}"}
            )
            findings.append(
                {"id": "signer.not-allowed", "severity": "critical", "summary": summary or "bad"}
            )
        return self.append(
            INSPECTION,
            {
                "inspector": "lab",
                "target": target.to_dict(),
                "apk": {"sha256": sha},
                "package": package,
                "facts": {"sha256": "ab" * 32, "tool": "apkprov inspect"},
                "findings": findings,
                "verdict": "fail" if kind else "pass",
            },
            "lab",
        )

    def takedown(
        self,
        scope: dict[str, Any],
        evidence: LogRef,
        *,
        effective: datetime | None = None,
        text: str = "sends contacts to a third party",
    ) -> LogRef:
        return self.append(
            TAKEDOWN,
            {
                "authority": "regulator",
                "scope": scope,
                "reason": {"code": "privacy", "text": text},
                "evidence": [evidence.to_dict()],
                "effective_at": format_time(effective or now() - timedelta(seconds=5)),
            },
            "regulator",
        )

    def restore(
        self, scope: dict[str, Any], takedown: LogRef, *, effective: datetime | None = None
    ) -> LogRef:
        return self.append(
            RESTORE,
            {
                "authority": "regulator",
                "scope": scope,
                "takedown": takedown.to_dict(),
                "reason": {"code": "resolved", "text": "the developer fixed it"},
                "evidence": [],
                "effective_at": format_time(effective or now() - timedelta(seconds=2)),
            },
            "regulator",
        )

    def close(self) -> None:
        self.log.close()
