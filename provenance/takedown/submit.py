"""Sending a signed statement to the log service with an actor's bearer token.

``POST /v1/statements`` (docs/service.md). The answer names the log index and leaf
hash; the leaf hash is checked against the bytes sent, so a service that logged
something else is caught at once. Refusals keep the service's stable error code
(``wrong-role``, ``replay``, ...) in the message; bad input (400, 413) is an
:class:`~provenance.errors.InputError`, every other refusal a
:class:`~provenance.errors.CheckFailed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from provenance.errors import CheckFailed, InputError
from provenance.keystore.passwords import parse_password_spec
from provenance.log.merkle import leaf_hash

__all__ = ["Receipt", "SubmissionRefused", "read_token", "submit_statement"]

_MAX_ANSWER = 1 << 20


class SubmissionRefused(CheckFailed):
    """The service refused the statement (its ``error`` code is kept)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the log refused the statement: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Receipt:
    """Where the statement went."""

    index: int
    leaf_hash: str
    statement_id: str
    predicate_type: str
    signer: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash,
            "statement_id": self.statement_id,
            "predicate_type": self.predicate_type,
            "signer": self.signer,
        }


def read_token(spec: str) -> str:
    """A bearer token from a spec: ``pass:TOKEN``, ``env:NAME``, ``file:PATH``,
    ``stdin`` (apksigner's password specs, so the token stays off the command line)."""
    token = parse_password_spec(spec, "service token").strip()
    if not token:
        raise InputError("the service token is empty")
    return token


def submit_statement(url: str, token: str, body: bytes, *, timeout: float = 30.0) -> Receipt:
    """POST ``body`` (a DSSE envelope) to the service at ``url``."""
    if not url.startswith(("http://", "https://")):
        raise InputError(f"service URL {url!r} must start with http:// or https://")
    endpoint = url.rstrip("/") + "/v1/statements"
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "User-Agent": "apkprov",
    }
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", endpoint, content=body, headers=headers) as resp,
        ):
            buf = bytearray()
            for chunk in resp.iter_bytes():
                buf += chunk
                if len(buf) > _MAX_ANSWER:
                    raise CheckFailed(f"{endpoint}: the answer is larger than {_MAX_ANSWER}")
    except httpx.HTTPError as e:
        raise CheckFailed(f"{endpoint}: {e}") from None
    text = bytes(buf)
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if resp.status_code != 201:
        code = str(doc.get("error", "")) if isinstance(doc, dict) else ""
        message = str(doc.get("message", "")) if isinstance(doc, dict) else ""
        message = message or text[:300].decode("utf-8", "replace").strip()
        if resp.status_code in (400, 413):
            why = code or str(resp.status_code)
            raise InputError(f"the log refused the statement: {why}: {message}")
        raise SubmissionRefused(resp.status_code, code or "error", message)
    try:
        receipt = Receipt(
            int(doc["index"]),
            str(doc["leaf_hash"]),
            str(doc["statement_id"]),
            str(doc["predicate_type"]),
            str(doc["signer"]),
        )
    except (KeyError, TypeError, ValueError):
        raise CheckFailed(f"{endpoint}: the answer is not a submission receipt") from None
    if receipt.leaf_hash != leaf_hash(body).hex():
        raise CheckFailed(
            f"the log recorded entry {receipt.index} with another leaf hash than the "
            "statement sent: check it with apkprov trace"
        )
    return receipt
