"""The service over real HTTP, on SQLite and on PostgreSQL: a whole life cycle by
different actors, every refusal (auth, role, replay, tampering, size, rate) with its
status and nothing appended, and the OpenAPI document against the real routes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from svc_world import APK_V1, PACKAGE, World, running_world

from provenance.log.merkle import leaf_hash
from provenance.log.proof import verify_tlog_proof
from provenance.service import ServiceSettings, service_app
from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    RELEASE,
    SHELVING,
    TAKEDOWN,
    Actor,
    ActorKey,
    KeySigner,
    canonical_json,
)
from provenance.trace import build_chains, render_text

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with running_world(request.param, tmp_path) as w:
        yield w


@pytest.fixture(scope="module", params=BACKENDS)
def lived(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world per backend with the whole life cycle in its log (read-only tests)."""
    with running_world(request.param, tmp_path_factory.mktemp("lived")) as w:
        w.life_cycle()
        w.wait_integrated()
        yield w


def _refused(w: World, resp_status: int, expected: int, code: str, before: tuple[int, int]) -> None:
    assert resp_status == expected
    assert w.sizes() == before, "nothing may be appended or indexed"


# ------------------------------------------------------------------ life cycle


def test_life_cycle_is_appended_indexed_and_traced(lived: World) -> None:
    w = lived
    sequenced, indexed = w.sizes()
    assert sequenced == indexed == len(w.entries) == 13
    # indices in the log are those the service answered
    for index, body in w.entries.values():
        answer = w.http.get(f"/v1/entries/{index}").json()
        assert canonical_json(answer["entry"]["envelope"]) == body
        proof = answer["entry"]["proof"]
        verify_tlog_proof(proof, leaf_hash(body), [w.verifier])
    result = w.trace()
    assert result.ok, result.problems
    steps = [s.step for s in result.statements if s.matched]
    assert steps == [
        "release",
        "release",
        "shelving",
        "shelving",
        "inspection",
        "takedown",
        "restore",
    ]
    refs = [s.step for s in result.statements if not s.matched]
    assert refs == ["developer-registration"]
    assert {s.signer for s in result.statements} == {"acme", "store", "store2", "lab", "regulator"}
    assert len(result.actors) == 5


def test_trace_answer_shape(lived: World) -> None:
    answer = lived.http.get("/v1/trace", params={"package": PACKAGE}).json()
    assert set(answer) == {
        "checkpoint",
        "tree_size",
        "query",
        "entries",
        "references",
        "pending",
        "next_after",
    }
    assert answer["query"] == {"package": PACKAGE}
    for item in answer["entries"] + answer["references"]:
        body = canonical_json(item["envelope"])
        assert item["leaf_hash"] == leaf_hash(body).hex()
        assert item["proof"].endswith(answer["checkpoint"])  # one checkpoint for all
        verify_tlog_proof(item["proof"], leaf_hash(body), [lived.verifier])
    # paging: limit 2 walks the same entries
    seen, after = [], -1
    while True:
        page = lived.http.get(
            "/v1/trace", params={"package": PACKAGE, "limit": 2, "after": after}
        ).json()
        seen += [e["index"] for e in page["entries"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == [e["index"] for e in answer["entries"]]


@pytest.mark.parametrize(
    ("param", "value_of", "steps"),
    [
        ("sha256", "apk", {"release", "shelving", "inspection", "takedown", "restore"}),
        ("cert", "cert", {"developer-registration", "release"}),
        ("actor", "acme", {"actor-registration", "developer-registration", "release"}),
    ],
)
def test_trace_by_digest_cert_and_actor(
    lived: World, param: str, value_of: str, steps: set[str]
) -> None:
    release = World._predicate(lived.entries["release-v1"][1])
    value = {
        "apk": release["apk"]["sha256"],
        "cert": release["signer_certificates"][0],
        "acme": "acme",
    }[value_of]
    result = lived.trace((param, value))
    assert result.ok, result.problems
    assert {s.step for s in result.statements if s.matched} == steps


def test_actors_endpoint_lists_the_registry_with_proofs(lived: World) -> None:
    answer = lived.http.get("/v1/actors").json()
    assert [e["predicate_type"] for e in answer["entries"]] == [ACTOR_REGISTRATION] * 5
    for item in answer["entries"]:
        verify_tlog_proof(
            item["proof"], leaf_hash(canonical_json(item["envelope"])), [lived.verifier]
        )


def test_read_path_and_status(lived: World) -> None:
    cp = lived.http.get("/checkpoint")
    assert cp.status_code == 200 and cp.text.startswith(lived.service.log.origin + "\n")
    assert cp.headers["content-type"].startswith("text/plain")
    assert lived.http.get("/tile/0/000.p/13").status_code == 200
    assert lived.http.get("/tile/entries/000.p/13").status_code == 200
    assert lived.http.get("/tile/../log.key").status_code == 404
    status = lived.http.get("/v1/status").json()
    assert status["tree_size"] == status["sequenced"] == status["indexed"] == 13
    assert status["vkey"] == lived.vkey
    assert lived.http.get("/v1/entries/999").status_code == 404
    assert lived.http.get("/v1/entries/x").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"package": PACKAGE, "sha256": "0" * 64},
        {"sha256": "xyz"},
        {"cert": "0" * 63},
        {"package": PACKAGE, "limit": "0"},
        {"package": PACKAGE, "after": "-5"},
    ],
)
def test_bad_trace_queries(lived: World, query: dict[str, str]) -> None:
    resp = lived.http.get("/v1/trace", params=query)
    assert resp.status_code == 400 and resp.json()["error"] == "malformed"


def test_openapi_describes_the_real_routes(lived: World) -> None:
    spec = lived.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    app = service_app(lived.service, close_on_shutdown=False)
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        if path == "":  # the mounted log read path
            for sub in route.routes:  # type: ignore[attr-defined]
                served |= {(sub.path.replace("{rest:path}", "{path}"), m) for m in sub.methods}
        else:
            served |= {(path, m) for m in route.methods}  # type: ignore[attr-defined]
    served = {(p, m.lower()) for p, m in served if m != "HEAD"}
    described = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert served == described


# -------------------------------------------------------------------- refusals


def test_unauthorized_submissions(world: World) -> None:
    world.register_actors()
    body = world.sign(DEVELOPER_REGISTRATION, world.developer_registration(), "store")
    before = world.sizes()
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer apkprov_000000000000_" + "A" * 43},
        {"Authorization": "Bearer " + world.tokens["store"][:-1] + "B"},
        {"Authorization": "Bearer not-a-token"},
    ):
        resp = world.http.post("/v1/statements", content=body, headers=headers)
        _refused(world, resp.status_code, 401, "unauthorized", before)
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert resp.json()["error"] == "unauthorized"
    # a revoked token
    token_id = world.tokens["store"].split("_")[1]
    assert world.service.tokens.revoke(token_id)
    _refused(world, world.post(body, "store").status_code, 401, "unauthorized", before)


def test_wrong_actor_and_wrong_role(world: World) -> None:
    world.register_actors()
    before = world.sizes()
    body = world.sign(DEVELOPER_REGISTRATION, world.developer_registration(), "store")
    # token of another actor than the signer
    resp = world.post(body, "store2")
    _refused(world, resp.status_code, 403, "wrong-actor", before)
    assert resp.json()["error"] == "wrong-actor"
    # a developer may not register developers (role policy)
    pred = world.developer_registration() | {"verified_by": "acme"}
    resp = world.post(world.sign(DEVELOPER_REGISTRATION, pred, "acme"), "acme")
    _refused(world, resp.status_code, 403, "wrong-role", before)
    assert resp.json()["error"] == "wrong-role"
    # a regulator may not create regulators (only the root)
    evil = KeySigner.generate()
    actor = Actor(
        "regulator2",
        "R2",
        frozenset({"regulator"}),
        (ActorKey(evil.public_key, world.root_keys[0].valid_from),),
    )
    resp = world.post(
        world.sign(ACTOR_REGISTRATION, actor.registration("regulator"), "regulator"), "regulator"
    )
    _refused(world, resp.status_code, 403, "wrong-role", before)
    # an unregistered key
    stranger = KeySigner.generate()
    world.signers["stranger"] = stranger
    resp = world.post(
        world.sign(DEVELOPER_REGISTRATION, world.developer_registration(), "stranger"), "store"
    )
    _refused(world, resp.status_code, 403, "unknown-key", before)
    assert resp.json()["error"] == "unknown-key"


def test_replay_and_tampering(world: World) -> None:
    world.register_actors()
    ref = world.submit(
        "developer-registration", DEVELOPER_REGISTRATION, world.developer_registration(), "store"
    )
    before = world.sizes()
    _, body = world.entries["developer-registration"]
    # the same envelope again
    resp = world.post(body, "store")
    _refused(world, resp.status_code, 409, "replay", before)
    assert resp.json()["error"] == "replay"
    # the same statement with an extra co-signature: same statement_id
    env = json.loads(body)
    other = json.loads(world.sign(DEVELOPER_REGISTRATION, world.developer_registration(), "store2"))
    env2 = dict(env, signatures=env["signatures"] + other["signatures"])
    resp = world.post(json.dumps(env2).encode(), "store")
    assert resp.status_code in (409, 422)  # the co-signature is over another payload
    assert world.sizes() == before
    # a tampered payload: signature no longer verifies
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["predicate"]["identity"]["legal_name"] = "Someone Else Ltd"
    env3 = dict(env, payload=base64.b64encode(canonical_json(payload)).decode())
    resp = world.post(json.dumps(env3).encode(), "store")
    _refused(world, resp.status_code, 422, "bad-signature", before)
    assert resp.json()["error"] == "bad-signature"
    # malformed JSON and a non-in-toto payload type
    resp = world.post(b'{"payload": ', "store")
    _refused(world, resp.status_code, 400, "malformed", before)
    env4 = dict(env, payloadType="text/plain")
    resp = world.post(json.dumps(env4).encode(), "store")
    _refused(world, resp.status_code, 400, "malformed", before)
    assert ref.index == before[0] - 1


def test_oversize_submissions(world: World) -> None:
    world.register_actors()
    before = world.sizes()
    limit = world.service.settings.max_body
    # declared too large
    resp = world.post(b"x" * (limit + 1), "store")
    _refused(world, resp.status_code, 413, "too-large", before)
    assert resp.json()["error"] == "too-large"

    # streamed without a length
    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    resp = world.http.post(
        "/v1/statements",
        content=chunks(),
        headers={"Authorization": f"Bearer {world.tokens['store']}"},
    )
    _refused(world, resp.status_code, 413, "too-large", before)
    # a valid envelope, too large
    body = world.sign(DEVELOPER_REGISTRATION, _big_registration(world), "store")
    assert len(body) > limit
    resp = world.post(body, "store")
    _refused(world, resp.status_code, 413, "too-large", before)


def _big_registration(world: World) -> dict[str, object]:
    pred = world.developer_registration()
    pred["signer_certificates"] = [
        {"sha256": f"{i:064x}", "packages": [f"com.example.app{j}" for j in range(100)]}
        for i in range(32)
    ]
    return pred


def test_statement_too_large_for_a_log_entry(tmp_path: Path) -> None:
    """A body limit above the log's entry limit still never reaches the log."""
    settings = ServiceSettings(
        max_body=300_000, log_options={"checkpoint_interval": 0.05, "fsync": False}
    )
    with running_world("sqlite", tmp_path, settings) as world:
        world.register_actors()
        before = world.sizes()
        body = world.sign(DEVELOPER_REGISTRATION, _big_registration(world), "store")
        assert 65535 < len(body) < 300_000
        resp = world.post(body, "store")
        _refused(world, resp.status_code, 413, "too-large", before)
        assert "65535" in resp.json()["message"]


def test_rate_limit(tmp_path: Path) -> None:
    settings = ServiceSettings(
        rate=0.1, burst=3, log_options={"checkpoint_interval": 0.05, "fsync": False}
    )
    with running_world("sqlite", tmp_path, settings) as world:
        world.add_token("store")
        statuses = [world.post(b"{}", "store").status_code for _ in range(5)]
        assert statuses[:3] == [400, 400, 400]  # allowed through to the (refusing) check
        assert statuses[3:] == [429, 429]
        resp = world.post(b"{}", "store")
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"] == "rate-limited"
        # another token is not affected
        world.add_token("acme")
        assert world.post(b"{}", "acme").status_code == 400
        assert world.sizes() == (0, 0)


def test_takedown_by_platform_of_another_platform_is_allowed_by_role(world: World) -> None:
    """Roles, not ownership, decide (docs/statements.md): a platform may take down."""
    world.register_actors()
    world.submit(
        "developer-registration", DEVELOPER_REGISTRATION, world.developer_registration(), "store"
    )
    world.submit("release-v1", RELEASE, world.release(APK_V1), "acme")
    world.submit("shelving-v1", SHELVING, world.shelving("store", "release-v1"), "store")
    sha = World._predicate(world.entries["release-v1"][1])["apk"]["sha256"]
    pred = world.takedown("shelving-v1", sha) | {"authority": "store2"}
    world.submit("takedown", TAKEDOWN, pred, "store2")
    result = world.trace()
    assert result.ok, result.problems
    assert [s.step for s in result.statements if s.matched][-1] == "takedown"
    (chain,) = build_chains(result)
    assert chain.standing() == "available"  # the app; the version is down
    assert [chain.standing(v) for v in chain.versions.values()] == ["taken down"]
    assert "[taken down]" in render_text(result, [chain])
