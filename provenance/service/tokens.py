"""Bearer tokens for submitting statements: one actor per token, stored hashed.

A token is ``apkprov_<id>_<secret>``: ``id`` (12 hex digits) names the token in
listings and revocations and selects its row; ``secret`` is 256 random bits
(base64url). Only SHA-256 of the whole token is stored, so a leaked database
does not leak usable tokens, and a plain hash is enough because the secret is
full-entropy (no password to brute-force, so no slow KDF needed). The stored hash
is compared with :func:`hmac.compare_digest`; the lookup is by ``id``, never by the
secret, so response time says nothing about how much of a guess was right.

Tokens are printed once, by ``apkprov actor add-token``, and cannot be shown again.
A token authenticates the *submitter*; the statement must still be signed by the
actor's registered key, and the service checks that the two are the same actor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from provenance.errors import InputError
from provenance.statements import ROOT_ACTOR_ID
from provenance.trace.sql import Database

__all__ = ["TOKEN_PREFIX", "TokenInfo", "TokenStore"]

TOKEN_PREFIX = "apkprov_"
_TOKEN = re.compile(r"apkprov_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_ACTOR_ID = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?")
_MAX_LABEL = 200

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS svc_tokens (
        token_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        actor TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT)""",
]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenInfo:
    """A token's public facts (never the token itself)."""

    token_id: str
    actor: str
    label: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "actor": self.actor,
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class TokenStore:
    """The ``svc_tokens`` table in the service database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.create_schema(_SCHEMA)

    def issue(self, actor: str, label: str = "") -> tuple[str, TokenInfo]:
        """A new token for ``actor``: returns the token (show it once) and its facts."""
        if actor != ROOT_ACTOR_ID and not _ACTOR_ID.fullmatch(actor):
            raise InputError(f"{actor!r} is not an actor id ([a-z0-9.-], at most 64)")
        if len(label) > _MAX_LABEL or any(ord(c) < 0x20 for c in label):
            raise InputError(f"a label is one line of at most {_MAX_LABEL} characters")
        token_id = secrets.token_hex(6)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
        token = f"{TOKEN_PREFIX}{token_id}_{secret}"
        info = TokenInfo(token_id, actor, label, _now())
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO svc_tokens (token_id, token_hash, actor, label, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_id, _hash(token), actor, label, info.created_at),
            )
        return token, info

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        rows = self.db.query(
            "SELECT token_id, actor, label, created_at, revoked_at FROM svc_tokens"
            " ORDER BY created_at, token_id"
        )
        return [
            TokenInfo(str(tid), str(actor), str(lab), str(at), None if rev is None else str(rev))
            for tid, actor, lab, at, rev in rows
        ]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by id; False if there is no such active token."""
        with self.db.transaction() as tx:
            found = tx.execute(
                "SELECT 1 FROM svc_tokens WHERE token_id = ? AND revoked_at IS NULL", (token_id,)
            )
            if found:
                tx.execute(
                    "UPDATE svc_tokens SET revoked_at = ? WHERE token_id = ?", (_now(), token_id)
                )
        return bool(found)

    def authenticate(self, token: str) -> TokenInfo | None:
        """The active token's facts, or None for anything else (malformed, unknown,
        wrong secret, revoked)."""
        m = _TOKEN.fullmatch(token)
        if m is None:
            return None
        rows = self.db.query(
            "SELECT token_hash, actor, label, created_at, revoked_at FROM svc_tokens"
            " WHERE token_id = ?",
            (m.group(1),),
        )
        if not rows:
            return None
        stored, actor, label, created, revoked = rows[0]
        if not hmac.compare_digest(str(stored).encode(), _hash(token).encode()):
            return None
        if revoked is not None:
            return None
        return TokenInfo(m.group(1), str(actor), str(label), str(created))
