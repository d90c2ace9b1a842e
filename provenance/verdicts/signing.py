"""Signed verdicts: a DSSE envelope around the canonical verdict JSON, Ed25519.

Why DSSE and not a signed note: a verdict is structured data (a query, lists of
reasons and log references) that terminals parse as JSON anyway, and DSSE signs the
payload bytes as received, so nothing is re-serialized before verification. The
envelope is the one the project already uses for life-cycle statements
(:mod:`provenance.statements.dsse`), with its own payload type
(``application/vnd.apkprov.verdict+json``): DSSE's pre-authentication encoding covers
the type, so a verdict can never be passed off as a statement or the other way round,
even if an operator reused a key. Signed notes stay what C2SP made them for:
line-oriented checkpoints and cosignatures.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from provenance.errors import CheckFailed, SignatureError
from provenance.statements import Envelope, Signer, key_id
from provenance.statements.dsse import pae, sign_envelope
from provenance.statements.errors import StatementFormatError
from provenance.statements.keys import PublicKey, verify_signature
from provenance.verdicts.model import Query, Verdict, VerdictFormatError, fast_canonical_json

__all__ = [
    "VERDICT_PAYLOAD_TYPE",
    "StaleVerdictError",
    "VerdictSignatureError",
    "sign_verdict",
    "signed_verdict_json",
    "verify_verdict",
]

VERDICT_PAYLOAD_TYPE = "application/vnd.apkprov.verdict+json"
_MAX_ENVELOPE = 96 * 1024
_MAX_SKEW = timedelta(minutes=5)


class VerdictSignatureError(SignatureError):
    """The verdict is not signed by a trusted verdict key."""


class StaleVerdictError(CheckFailed):
    """The verdict expired, or answers another question than the one asked."""


def sign_verdict(verdict: Verdict, signer: Signer) -> Envelope:
    """The DSSE envelope of ``verdict`` signed by the service key."""
    return sign_envelope(verdict.to_json(), VERDICT_PAYLOAD_TYPE, [signer])


def signed_verdict_json(verdict: Verdict, signer: Signer) -> bytes:
    """``sign_verdict(verdict, signer).to_json()``, the same bytes, without the detours
    (the API's hot path)."""
    payload = verdict.to_json()
    sig = signer.sign(pae(VERDICT_PAYLOAD_TYPE, payload))
    return fast_canonical_json(
        {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": VERDICT_PAYLOAD_TYPE,
            "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(sig).decode("ascii")}],
        }
    )


def verify_verdict(
    envelope: bytes | Envelope,
    keys: Mapping[str, PublicKey] | PublicKey,
    *,
    now: datetime | None = None,
    query: Query | None = None,
) -> Verdict:
    """Check a signed verdict: signature by a trusted key, unexpired, answering ``query``.

    ``keys`` maps DSSE key IDs to public keys (or is the one service key).
    Raises :class:`VerdictSignatureError`, :class:`StaleVerdictError` or
    :class:`VerdictFormatError`.
    """
    if not isinstance(keys, Mapping):
        keys = {key_id(keys): keys}
    try:
        env = (
            envelope
            if isinstance(envelope, Envelope)
            else Envelope.from_json(envelope, max_size=_MAX_ENVELOPE, max_signatures=4)
        )
    except StatementFormatError as e:
        raise VerdictFormatError(f"signed verdict: {e}") from None
    if env.payload_type != VERDICT_PAYLOAD_TYPE:
        raise VerdictFormatError(
            f"payload type is {env.payload_type[:80]!r}, not {VERDICT_PAYLOAD_TYPE!r}"
        )
    message = env.pae()
    if not any(
        (key := keys.get(s.keyid)) is not None and verify_signature(key, message, s.sig)
        for s in env.signatures
    ):
        raise VerdictSignatureError("the verdict is not signed by a trusted verdict key")
    verdict = Verdict.from_json(env.payload)
    now = now or datetime.now(UTC)
    if verdict.expired(now):
        raise StaleVerdictError(f"the verdict expired at {verdict.expires.isoformat()}")
    if verdict.issued_at - now > _MAX_SKEW:
        raise StaleVerdictError("the verdict is issued in the future (check the clock)")
    if query is not None and verdict.query != query:
        raise StaleVerdictError(
            f"the verdict answers {verdict.query.describe()}, not {query.describe()}"
        )
    return verdict
