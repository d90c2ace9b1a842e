"""Test material for the service: a log on SQLite or PostgreSQL served over real HTTP,
actors with keys and tokens, and one statement builder per life-cycle step."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from corpus import apksig_dir, require
from pg import shared_server

from provenance.apk.verify import verify_apk
from provenance.log.log import Log
from provenance.log.note import Ed25519Verifier, parse_verifier_key
from provenance.service import Service, ServiceSettings, service_app
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
    KeySigner,
    LogRef,
    make_statement,
    release_predicate,
    sign_statement,
)
from provenance.trace import HttpTraceSource, TraceResult, TraceVerifier, Trust

ORIGIN = "log.example.test/provenance"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
PACKAGE = "android.appsecurity.cts.tinyapp"
APK_V1 = "golden-aligned-v1v2v3-out.apk"
APK_V2 = "golden-aligned-v1v2v3-lineage-out.apk"

# actor id -> roles, key algorithm
ACTORS: dict[str, tuple[list[str], str]] = {
    "regulator": (["regulator"], "ed25519"),
    "store": (["platform"], "ed25519"),
    "store2": (["platform"], "ecdsa-p256-sha256"),
    "acme": (["developer"], "ecdsa-p256-sha256"),
    "lab": (["inspector"], "ecdsa-p256-sha256"),
}


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def apk(name: str) -> Path:
    return require(apksig_dir() / name)


def certs_of(path: Path) -> list[str]:
    return [c.sha256 for c in verify_apk(path).signer_certs]


@dataclass
class World:
    """A running service with its log, actors, signers and tokens."""

    backend: str
    directory: Path
    service: Service
    url: str
    http: httpx.Client
    root: KeySigner
    dsn: str | None
    signers: dict[str, KeySigner] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    entries: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def vkey(self) -> str:
        return self.service.log.config.vkey

    @property
    def verifier(self) -> Ed25519Verifier:
        v = parse_verifier_key(self.vkey)
        assert isinstance(v, Ed25519Verifier)
        return v

    @property
    def root_keys(self) -> list[ActorKey]:
        return [ActorKey(self.root.public_key, T0)]

    def sign(self, ptype: str, predicate: dict[str, Any], *signers: str) -> bytes:
        statement = make_statement(ptype, predicate)
        keys = [self.root if s == "registry-root" else self.signers[s] for s in signers]
        return sign_statement(statement, keys).to_json()

    def post(self, body: bytes, actor: str | None, **headers: str) -> httpx.Response:
        h = dict(headers)
        if actor is not None:
            h.setdefault("Authorization", f"Bearer {self.tokens[actor]}")
        return self.http.post("/v1/statements", content=body, headers=h)

    def submit(self, name: str, ptype: str, predicate: dict[str, Any], signer: str) -> LogRef:
        """Sign and POST a statement; remember its ref under ``name``."""
        body = self.sign(ptype, predicate, signer)
        resp = self.post(body, signer)
        assert resp.status_code == 201, resp.text
        out = resp.json()
        assert out["leaf_hash"] == hashlib.sha256(b"\x00" + body).hexdigest()
        self.entries[name] = (out["index"], body)
        return LogRef.to_entry(out["index"], body)

    def ref(self, name: str) -> dict[str, Any]:
        index, body = self.entries[name]
        return LogRef.to_entry(index, body).to_dict()

    def wait_integrated(self) -> None:
        """Until a checkpoint covers everything sequenced."""
        log = self.service.log
        target = log.state.sequenced_size()
        if target:
            log.sequencer.wait_for(target - 1, timeout=20)

    def sizes(self) -> tuple[int, int]:
        """(sequenced log entries, indexed statements)."""
        return self.service.log.state.sequenced_size(), self.service.index.count()

    def trust(self) -> Trust:
        return Trust(self.verifier, self.root_keys)

    def trace(self, *queries: tuple[str, str]) -> TraceResult:
        """Trace over HTTP with a client that holds only the vkey and the root key."""
        self.wait_integrated()
        source = HttpTraceSource(self.url)
        try:
            return TraceVerifier(source, self.trust()).run(list(queries) or [("package", PACKAGE)])
        finally:
            source.close()

    # --------------------------------------------------------------- life cycle

    def register_actors(self) -> None:
        """The root registers the regulator; the regulator registers everyone else."""
        for actor_id, (_, alg) in ACTORS.items():
            self.signers[actor_id] = KeySigner.generate(alg)
            self.add_token(actor_id)
        self.add_token("registry-root")
        for actor_id, (roles, _) in ACTORS.items():
            actor = Actor(
                actor_id,
                actor_id.title() + " Ltd",
                frozenset(roles),
                (ActorKey(self.signers[actor_id].public_key, T0),),
            )
            registrar = "registry-root" if "regulator" in roles else "regulator"
            self.submit(
                f"actor:{actor_id}", ACTOR_REGISTRATION, actor.registration(registrar), registrar
            )

    def add_token(self, actor: str) -> str:
        token, _ = self.service.tokens.issue(actor, f"test token of {actor}")
        self.tokens[actor] = token
        return token

    def developer_registration(self) -> dict[str, Any]:
        return {
            "verified_by": "store",
            "developer": "acme",
            "identity": {
                "kind": "organization",
                "legal_name": "ACME Software Co., Ltd.",
                "country": "CN",
                "verification_method": "business licence",
                "verified_at": "2025-06-01T09:30:00Z",
            },
            "contact": {"email": "dev@acme.example"},
            "signer_certificates": [
                {"sha256": c, "packages": [PACKAGE]}
                for c in dict.fromkeys(certs_of(apk(APK_V1)) + certs_of(apk(APK_V2)))
            ],
            "rotations": [],
        }

    def release(self, apk_name: str) -> dict[str, Any]:
        dev = self.entries["developer-registration"]
        return release_predicate(
            apk(apk_name),
            developer="acme",
            developer_registration=LogRef.to_entry(dev[0], dev[1]),
        )

    def shelving(self, platform: str, release: str) -> dict[str, Any]:
        index, body = self.entries[release]
        rel = self._predicate(body)
        return {
            "platform": platform,
            "release": LogRef.to_entry(index, body).to_dict(),
            "apk": {"sha256": rel["apk"]["sha256"]},
            "package": rel["package"],
            "version_code": rel["version_code"],
            "listing": {"id": f"{platform}-{rel['package']}", "shelved_at": _now()},
            "metadata": {
                "app_name": "Tiny App",
                "developer_name": "ACME Software Co., Ltd.",
                "functions": [{"name": "tiny", "description": "Does tiny things."}],
                "permissions": [],
                "sdks": [],
                "privacy_policy": {"url": "https://acme.example/privacy"},
            },
            "reviewer": {"id": "rev-1"},
        }

    def inspection(self, target: str) -> dict[str, Any]:
        index, body = self.entries[target]
        p = self._predicate(body)
        return {
            "inspector": "lab",
            "target": LogRef.to_entry(index, body).to_dict(),
            "apk": {"sha256": p["apk"]["sha256"]},
            "package": p["package"],
            "facts": {"sha256": "ab" * 32, "tool": "apkprov inspect 0.1.0"},
            "findings": [
                {"id": "PERM-UNDECLARED", "severity": "medium", "summary": "reads contacts"}
            ],
            "verdict": "warn",
        }

    def takedown(self, evidence: str, sha256: str) -> dict[str, Any]:
        return {
            "authority": "regulator",
            "scope": {"kind": "version", "package": PACKAGE, "apk_sha256": sha256},
            "reason": {"code": "privacy", "text": "collects contacts without consent"},
            "evidence": [self.ref(evidence)],
            "effective_at": _now(),
        }

    def restore(self, takedown: str) -> dict[str, Any]:
        index, body = self.entries[takedown]
        p = self._predicate(body)
        return {
            "authority": "regulator",
            "scope": p["scope"],
            "takedown": LogRef.to_entry(index, body).to_dict(),
            "reason": {"code": "resolved", "text": "fixed"},
            "evidence": [],
            "effective_at": _now(),
        }

    @staticmethod
    def _predicate(body: bytes) -> dict[str, Any]:
        from provenance.statements import Envelope, Statement

        return Statement.from_json(Envelope.from_json(body).payload).predicate

    def life_cycle(self) -> None:
        """Registration -> releases -> shelvings -> inspection -> takedown -> restore."""
        self.register_actors()
        self.submit(
            "developer-registration",
            DEVELOPER_REGISTRATION,
            self.developer_registration(),
            "store",
        )
        self.submit("release-v1", RELEASE, self.release(APK_V1), "acme")
        self.submit("release-v2", RELEASE, self.release(APK_V2), "acme")
        self.submit("shelving-v1", SHELVING, self.shelving("store", "release-v1"), "store")
        self.submit("shelving-v2", SHELVING, self.shelving("store2", "release-v2"), "store2")
        self.submit("inspection-v1", INSPECTION, self.inspection("shelving-v1"), "lab")
        sha1 = self._predicate(self.entries["release-v1"][1])["apk"]["sha256"]
        self.submit("takedown-v1", TAKEDOWN, self.takedown("inspection-v1", sha1), "regulator")
        self.submit("restore-v1", RESTORE, self.restore("takedown-v1"), "regulator")


def _now() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def running_world(
    backend: str, tmp_path: Path, settings: ServiceSettings | None = None
) -> Iterator[World]:
    """A fresh log (and index) on ``backend``, served over HTTP."""
    dsn = shared_server().new_dsn() if backend == "postgres" else None
    directory = tmp_path / "data"
    Log.create(directory, ORIGIN, postgres=dsn, fsync=False).close()
    root = KeySigner.generate()
    settings = settings or ServiceSettings(
        log_options={"checkpoint_interval": 0.05, "fsync": False}
    )
    service = Service(directory, [ActorKey(root.public_key, T0)], postgres=dsn, settings=settings)
    try:
        with (
            serve(service_app(service, close_on_shutdown=False)) as url,
            httpx.Client(base_url=url, timeout=30) as http,
        ):
            yield World(backend, directory, service, url, http, root, dsn)
    finally:
        service.close()
