"""A chain ready for a takedown, on the service fixtures of tests/service (imported,
not copied), and a real ``apkprov serve`` process over its data folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import serving
from cryptography.hazmat.primitives import serialization
from svc_world import APK_V1, APK_V2, T0, World

from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    SHELVING,
    Actor,
    ActorKey,
    KeySigner,
)


def add_access_provider(w: World, actor_id: str = "isp") -> None:
    """Register an access provider (by the regulator) with a key and a token."""
    w.signers[actor_id] = KeySigner.generate()
    w.add_token(actor_id)
    actor = Actor(
        actor_id,
        "Example Access Provider Ltd",
        frozenset({"access_provider"}),
        (ActorKey(w.signers[actor_id].public_key, T0),),
    )
    w.submit(f"actor:{actor_id}", ACTOR_REGISTRATION, actor.registration("regulator"), "regulator")


def build_chain(w: World, *, shelve: bool = True, inspect: bool = True) -> None:
    """Actors (with an access provider), registration, two releases, their shelvings
    and an inspection of version 1 -- no takedown yet."""
    w.register_actors()
    add_access_provider(w)
    w.submit("developer-registration", DEVELOPER_REGISTRATION, w.developer_registration(), "store")
    w.submit("release-v1", RELEASE, w.release(APK_V1), "acme")
    w.submit("release-v2", RELEASE, w.release(APK_V2), "acme")
    if shelve:
        w.submit("shelving-v1", SHELVING, w.shelving("store", "release-v1"), "store")
        w.submit("shelving-v2", SHELVING, w.shelving("store2", "release-v2"), "store2")
    if inspect:
        target = "shelving-v1" if shelve else "release-v1"
        w.submit("inspection-v1", INSPECTION, w.inspection(target), "lab")


def sha_of(w: World, name: str) -> str:
    sha: str = w._predicate(w.entries[name][1])["apk"]["sha256"]
    return sha


@dataclass
class Files:
    """What an actor holds on disk: the log's vkey, the root's public key, own keys."""

    vkey: Path
    root: Path
    keys: dict[str, Path]


def write_files(w: World, where: Path) -> Files:
    where.mkdir(parents=True, exist_ok=True)
    vkey = where / "log.vkey"
    vkey.write_text(w.vkey + "\n")
    root = where / "root.pub.pem"
    root.write_bytes(
        w.root.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    keys = {}
    for actor, signer in w.signers.items():
        path = where / f"{actor}.key.pem"
        path.write_bytes(signer.private_pem())
        keys[actor] = path
    return Files(vkey, root, keys)


@contextmanager
def serve_process(directory: Path, root: Path) -> Iterator[str]:
    """``apkprov serve`` as a separate process on 127.0.0.1; its base URL."""
    with serving.serve_process(
        directory, "--root-key", str(root), "--checkpoint-interval", "0.05"
    ) as url:
        yield url


def wait_integrated(url: str, index: int) -> None:
    """Until the served log's checkpoint covers entry ``index``."""
    deadline = time.monotonic() + 10
    while httpx.get(url + "/v1/status").json()["tree_size"] <= index:
        assert time.monotonic() < deadline, f"entry {index} not integrated"
        time.sleep(0.05)
