"""The actor registry's trust anchor: its root keys, configured out of band.

Everything else about actors is in the log (actor-registration statements), so a
verifier needs only the root keys -- and the log's verifier key -- to rebuild the
registry and check every statement's signer and role. Two ways to give them:

* ``--root-key FILE`` (repeatable): a public key in PEM, DER, base64 DER SPKI or the
  Ed25519 note verifier-key form, valid from the beginning of time;
* ``--registry FILE``: a JSON document, for keys with validity windows::

      {"format": "apkprov-registry-root/1",
       "root_keys": [{"public_key": "<base64 DER SPKI or PEM>",
                      "valid_from": "2026-01-01T00:00:00Z",
                      "valid_until": "2031-01-01T00:00:00Z",     (optional)
                      "keyid": "<hex>"}]}                         (optional, checked)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provenance.errors import InputError, ProvenanceError
from provenance.statements import ActorKey, load_public_key
from provenance.statements.schema import format_time, parse_time

__all__ = [
    "REGISTRY_FORMAT",
    "load_registry_file",
    "load_root_keys",
    "registry_document",
]

REGISTRY_FORMAT = "apkprov-registry-root/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_FILE = 1 << 20


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        p = Path(path)
        if p.stat().st_size > _MAX_FILE:
            raise InputError(f"{path} is larger than {_MAX_FILE} bytes")
        return p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {os.fspath(path)}: {e.strerror or e}") from None


def _key(obj: Any, where: str) -> ActorKey:
    if not isinstance(obj, dict) or "public_key" not in obj or "valid_from" not in obj:
        raise InputError(f"{where}: needs public_key and valid_from")
    extra = set(obj) - {"public_key", "valid_from", "valid_until", "keyid", "algorithm"}
    if extra:
        raise InputError(f"{where}: unknown fields {sorted(extra)}")
    try:
        until = obj.get("valid_until")
        key = ActorKey(
            load_public_key(obj["public_key"]),
            parse_time(obj["valid_from"], f"{where}.valid_from"),
            parse_time(until, f"{where}.valid_until") if until is not None else None,
        )
    except (ProvenanceError, TypeError, ValueError) as e:
        raise InputError(f"{where}: {e}") from None
    if "keyid" in obj and obj["keyid"] != key.key_id:
        raise InputError(f"{where}: keyid is not SHA-256 of the public key")
    return key


def load_registry_file(path: str | os.PathLike[str]) -> list[ActorKey]:
    """Root keys from a registry-root JSON document."""
    try:
        doc = json.loads(_read(path))
    except ValueError as e:
        raise InputError(f"{os.fspath(path)} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != REGISTRY_FORMAT:
        raise InputError(f"{os.fspath(path)} is not an {REGISTRY_FORMAT} document")
    keys = doc.get("root_keys")
    if not isinstance(keys, list) or not keys:
        raise InputError(f"{os.fspath(path)}: root_keys must be a non-empty list")
    return [_key(k, f"{os.fspath(path)}: root_keys[{i}]") for i, k in enumerate(keys)]


def load_root_keys(
    registry: str | os.PathLike[str] | None = None,
    root_keys: Sequence[str | os.PathLike[str]] = (),
) -> list[ActorKey]:
    """The root keys from ``--registry`` and/or ``--root-key`` files (at least one)."""
    out: list[ActorKey] = []
    if registry is not None:
        out += load_registry_file(registry)
    for path in root_keys:
        try:
            out.append(ActorKey(load_public_key(_read(path)), _EPOCH))
        except ProvenanceError as e:
            raise InputError(f"{os.fspath(path)}: {e}") from None
    if not out:
        raise InputError("the actor registry's root key is needed: --registry FILE or --root-key")
    return out


def registry_document(keys: Iterable[ActorKey]) -> dict[str, Any]:
    """The registry-root JSON document for ``keys`` (what ``--registry`` reads)."""
    out = []
    for k in keys:
        d = k.to_dict()
        if k.valid_from == _EPOCH:
            d["valid_from"] = format_time(_EPOCH)
        out.append(d)
    return {"format": REGISTRY_FORMAT, "root_keys": out}
