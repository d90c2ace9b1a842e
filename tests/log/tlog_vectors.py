"""Locate and load the shared transparency-log test vectors (never copied into the repo).

The corpus lives in ``$APKPROV_SHARED/corpus/tlog``; ``APKPROV_SHARED`` defaults to the
``shared`` folder next to the repository.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.log.note import ECDSAVerifier, Ed25519Verifier, Verifier

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("APKPROV_SHARED", REPO_ROOT.parent / "shared"))
TLOG = SHARED / "corpus" / "tlog"
MERKLE_TESTDATA = TLOG / "transparency-dev-merkle" / "testdata"


def require(path: Path) -> Path:
    """Skip (at collection time) when the shared corpus is not available."""
    if not path.exists():
        pytest.skip(f"shared corpus not found at {path} (set APKPROV_SHARED)")
    return path


def load(relative: str) -> Any:
    return json.loads(require(TLOG / relative).read_text(encoding="utf-8"))


def vector_files(kind: str) -> list[Path]:
    """All JSON vectors under testdata/<kind>/, sorted for stable test ids."""
    root = MERKLE_TESTDATA / kind
    if not root.exists():
        return []
    return sorted(root.rglob("*.json"))


def vector_id(path: Path) -> str:
    return str(path.relative_to(MERKLE_TESTDATA))


def b64(s: str) -> bytes:
    return base64.b64decode(s)


def b64_list(items: list[str] | None) -> list[bytes]:
    return [b64(x) for x in items or []]


SIGSTORE_BUNDLES = [
    "a.dsse.staging-rekor-v2.txt.sigstore.json",
    "staging-rekor-v2.txt.sigstore.json",
    "bundle_v3.txt.sigstore",
]


def trusted_log_verifiers() -> list[Verifier]:
    """Note verifiers for every Rekor log in the staging trusted root.

    Rekor v2 signs checkpoints with Ed25519 (type 0x01) under the log's host name;
    Rekor v1 signs with ECDSA P-256 (type 0x02) keyed by the SPKI hash.
    """
    root = json.loads(require(TLOG / "sigstore" / "staging_trusted_root.json").read_text())
    out: list[Verifier] = []
    for log in root["tlogs"]:
        der = base64.b64decode(log["publicKey"]["rawBytes"])
        name = log["baseUrl"].removeprefix("https://")
        if log["publicKey"]["keyDetails"] == "PKIX_ED25519":
            key = serialization.load_der_public_key(der)
            assert isinstance(key, Ed25519PublicKey)
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            out.append(Ed25519Verifier(name, raw))
        else:
            ecdsa = ECDSAVerifier(name, der)
            log_id = base64.b64decode(log["logId"]["keyId"])
            assert ecdsa.key_id == int.from_bytes(log_id[:4], "big")
            out.append(ecdsa)
    return out
