"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1.0.0).

A signature covers ``PAE(payloadType, payload)``::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the ASCII decimal byte length, so the payload type is authenticated and the
payload is signed as the exact bytes sent -- nothing is re-serialized before
verification. ``keyid`` is an unauthenticated hint that only selects the key to try.

Reading accepts standard and URL-safe base64, padded or not, as the protocol requires;
writing (:meth:`Envelope.to_json`) always gives the canonical form: standard padded
base64 in canonical JSON, so an envelope accepted into the log has one encoding.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provenance.statements.canonical import canonical_json, parse_json
from provenance.statements.errors import (
    EnvelopeSignatureError,
    StatementFormatError,
    StatementTooLarge,
)
from provenance.statements.keys import PublicKey, verify_signature
from provenance.statements.signers import Signer

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "MAX_SIGNATURES",
    "Envelope",
    "Signature",
    "pae",
    "sign_envelope",
    "verify_envelope",
]

MAX_ENVELOPE_SIZE = 512 * 1024
"""Default bound on a serialized envelope, checked before it is parsed."""
MAX_SIGNATURES = 8
"""Default bound on signatures per envelope."""
_MAX_PAYLOAD_TYPE = 256
_MAX_KEYID = 256
_MAX_SIG = 1024
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``payload_type`` and ``payload``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _b64decode(text: str, what: str, max_len: int) -> bytes:
    """Standard or URL-safe base64 (one alphabet), padding optional; bounded."""
    if not isinstance(text, str):
        raise StatementFormatError(f"{what} must be a base64 string")
    if len(text) > (max_len + 2) // 3 * 4:
        raise StatementTooLarge(f"{what} is over {max_len} bytes")
    if not _B64.fullmatch(text):
        raise StatementFormatError(f"{what} is not base64")
    body = text.rstrip("=")
    if len(text) - len(body) and len(text) % 4:
        raise StatementFormatError(f"{what} has wrong base64 padding")
    body = body.replace("-", "+").replace("_", "/")
    try:
        return binascii.a2b_base64(body + "=" * (-len(body) % 4), strict_mode=True)
    except binascii.Error:
        raise StatementFormatError(f"{what} is not base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Signature:
    """One DSSE signature and its (unauthenticated) key ID hint."""

    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the payload bytes, their type and the signatures over both."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def pae(self) -> bytes:
        """The bytes every signature covers."""
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (standard base64; ``keyid`` left out when empty)."""
        sigs: list[dict[str, str]] = []
        for s in self.signatures:
            entry = {"sig": _b64(s.sig)}
            if s.keyid:
                entry["keyid"] = s.keyid
            sigs.append(entry)
        return {"payload": _b64(self.payload), "payloadType": self.payload_type, "signatures": sigs}

    def to_json(self) -> bytes:
        """Canonical JSON bytes: what the log stores as the entry."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(
        cls,
        data: bytes,
        *,
        max_size: int = MAX_ENVELOPE_SIZE,
        max_signatures: int = MAX_SIGNATURES,
    ) -> Envelope:
        """Parse an envelope strictly: bounded sizes, no unknown fields, valid base64."""
        obj = parse_json(data, max_size=max_size, max_depth=4, what="DSSE envelope")
        return cls.from_dict(obj, max_size=max_size, max_signatures=max_signatures)

    @classmethod
    def from_dict(
        cls,
        obj: object,
        *,
        max_size: int = MAX_ENVELOPE_SIZE,
        max_signatures: int = MAX_SIGNATURES,
    ) -> Envelope:
        """Build from an already parsed JSON object (see :meth:`from_json`)."""
        if not isinstance(obj, dict):
            raise StatementFormatError("DSSE envelope must be a JSON object")
        extra = set(obj) - {"payload", "payloadType", "signatures"}
        if extra:
            raise StatementFormatError(f"DSSE envelope has unknown fields {sorted(extra)}")
        for name in ("payload", "payloadType", "signatures"):
            if name not in obj:
                raise StatementFormatError(f"DSSE envelope has no {name}")
        payload_type = obj["payloadType"]
        if not isinstance(payload_type, str) or not payload_type:
            raise StatementFormatError("DSSE payloadType must be a non-empty string")
        if len(payload_type) > _MAX_PAYLOAD_TYPE:
            raise StatementTooLarge("DSSE payloadType is too long")
        payload = _b64decode(obj["payload"], "DSSE payload", max_size)
        raw_sigs = obj["signatures"]
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise StatementFormatError("DSSE signatures must be a non-empty list")
        if len(raw_sigs) > max_signatures:
            raise StatementTooLarge(
                f"DSSE envelope has {len(raw_sigs)} signatures, over the limit of {max_signatures}"
            )
        sigs: list[Signature] = []
        for i, s in enumerate(raw_sigs):
            if not isinstance(s, dict) or "sig" not in s or set(s) - {"sig", "keyid"}:
                raise StatementFormatError(
                    f"DSSE signature {i} must be an object with sig and optional keyid"
                )
            keyid = s.get("keyid", "")
            if not isinstance(keyid, str) or len(keyid) > _MAX_KEYID:
                raise StatementFormatError(f"DSSE signature {i} has a malformed keyid")
            sig = _b64decode(s["sig"], f"DSSE signature {i}", _MAX_SIG)
            if not sig:
                raise StatementFormatError(f"DSSE signature {i} is empty")
            sigs.append(Signature(sig, keyid))
        return cls(payload, payload_type, tuple(sigs))


def sign_envelope(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> Envelope:
    """Sign ``payload`` as is with every signer (keyid = the signer's key ID)."""
    if not signers:
        raise StatementFormatError("an envelope needs at least one signer")
    if not payload_type:
        raise StatementFormatError("payload type must not be empty")
    message = pae(payload_type, payload)
    return Envelope(
        bytes(payload),
        payload_type,
        tuple(Signature(s.sign(message), s.key_id) for s in signers),
    )


def verify_envelope(
    envelope: Envelope, keys: Mapping[str, PublicKey], *, threshold: int = 1
) -> tuple[str, ...]:
    """Key IDs of the distinct trusted keys whose signatures verify (DSSE multi-signature).

    A signature with a keyid is tried with that key only; one without is tried with
    every key. Signatures that do not verify are skipped, as the protocol says; fewer
    than ``threshold`` distinct keys raises :class:`EnvelopeSignatureError`.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    message = envelope.pae()
    accepted: list[str] = []
    for s in envelope.signatures:
        candidates = [s.keyid] if s.keyid else list(keys)
        for kid in candidates:
            key = keys.get(kid)
            if kid in accepted or key is None:
                continue
            if verify_signature(key, message, s.sig):
                accepted.append(kid)
                break
    if len(accepted) < threshold:
        raise EnvelopeSignatureError(
            f"DSSE envelope verified with {len(accepted)} trusted key(s), {threshold} needed"
        )
    return tuple(accepted)
