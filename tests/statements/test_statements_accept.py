"""accept(): the whole life cycle goes in; every refusal path stays out."""

from __future__ import annotations

import base64
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from stmt_helpers import NOW, POLICY, SIGNER_OF, T0, World, predicate, statement

from provenance.errors import CheckFailed, InputError, PolicyError
from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    PREDICATES,
    RELEASE,
    RESTORE,
    ROOT_ACTOR_ID,
    SDK_REGISTRATION,
    SHELVING,
    TAKEDOWN,
    Actor,
    ActorKey,
    BuildProvenanceError,
    Envelope,
    EnvelopeSignatureError,
    KeySigner,
    Limits,
    LogRef,
    ReplayError,
    ReplayWindow,
    RoleError,
    RolePolicy,
    Signature,
    StatementFormatError,
    StatementRefused,
    StatementTooLarge,
    UnknownKeyError,
    accept,
    make_statement,
    rebuild_registry,
    sign_envelope,
    sign_statement,
)
from provenance.statements.intoto import PAYLOAD_TYPE


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _accept(world: World, body: bytes | Envelope, seen: Any = (), **kw: Any) -> Any:
    kw.setdefault("now", NOW)
    kw.setdefault("policy", POLICY)
    return accept(body, world.registry, seen, **kw)


# ------------------------------------------------------------------ the good path


@pytest.mark.parametrize("ptype", sorted(PREDICATES))
def test_each_step_is_accepted_from_its_signer(world: World, ptype: str) -> None:
    st = statement(ptype)
    signer = SIGNER_OF[ptype]
    body = world.sign(st, signer)
    acc = _accept(world, body)
    assert acc.signer.id == signer and acc.statement == st and acc.spec.type == ptype
    assert acc.entry == body  # what we sign is already canonical
    assert acc.statement_id == st.statement_id and acc.cosigners == ()
    assert LogRef.to_entry(12, acc.entry).matches(body)


def test_life_cycle_with_log_refs(world: World) -> None:
    """Registration, developer, release, shelving, inspection, takedown, restore, chained."""
    log: list[bytes] = []
    seen: set[str] = set()
    fresh = World()
    registry = fresh.registry

    def submit(ptype: str, p: dict[str, Any], signer: str) -> LogRef:
        st = make_statement(ptype, p, issued_at=NOW + timedelta(seconds=len(log)))
        acc = accept(
            fresh.sign(st, signer),
            registry,
            seen,
            policy=POLICY,
            now=NOW + timedelta(seconds=len(log)),
        )
        log.append(acc.entry)
        seen.add(acc.statement_id)
        if ptype == ACTOR_REGISTRATION:
            registry.apply(acc)
        return LogRef.to_entry(len(log) - 1, acc.entry)

    new_dev = KeySigner.generate()
    fresh.signers["newdev"] = new_dev
    reg = Actor("newdev", "New Dev", frozenset({"developer"}), (ActorKey(new_dev.public_key, T0),))
    reg_ref = submit(ACTOR_REGISTRATION, reg.registration("regulator"), "regulator")
    dev = predicate(DEVELOPER_REGISTRATION) | {"developer": "newdev"}
    dev_ref = submit(DEVELOPER_REGISTRATION, dev, "store")
    rel = predicate(RELEASE) | {"developer": "newdev", "developer_registration": dev_ref.to_dict()}
    rel_ref = submit(RELEASE, rel, "newdev")
    shelf_ref = submit(SHELVING, predicate(SHELVING) | {"release": rel_ref.to_dict()}, "store")
    insp_ref = submit(INSPECTION, predicate(INSPECTION) | {"target": shelf_ref.to_dict()}, "lab")
    down = submit(TAKEDOWN, predicate(TAKEDOWN) | {"evidence": [insp_ref.to_dict()]}, "regulator")
    submit(RESTORE, predicate(RESTORE) | {"takedown": down.to_dict(), "evidence": []}, "regulator")
    assert len(log) == 7 and len(seen) == 7 and reg_ref.index == 0
    assert registry.actor("newdev") is not None
    # The registry can be rebuilt from the log alone.
    rebuilt = rebuild_registry(
        [ActorKey(fresh.root.public_key, T0)], [*_registrations(fresh), *log], policy=POLICY
    )
    newdev = rebuilt.actor("newdev")
    assert newdev is not None and newdev.roles == {"developer"}


def _registrations(w: World) -> list[bytes]:
    """Actor-registration entries for the world's actors (registered by the root)."""
    out = []
    for actor in w.registry:
        if actor.id == ROOT_ACTOR_ID:
            continue
        st = make_statement(ACTOR_REGISTRATION, actor.registration(ROOT_ACTOR_ID), issued_at=T0)
        out.append(w.sign(st, ROOT_ACTOR_ID))
    return out


def test_cosigners_are_recorded(world: World) -> None:
    st = statement(INSPECTION)
    acc = _accept(world, world.sign(st, "store", "lab"))
    assert acc.signer.id == "lab" and [a.id for a in acc.cosigners] == ["store"]


def test_accept_changes_nothing(world: World) -> None:
    seen: set[str] = set()
    before = {a.id: a for a in world.registry}
    st = statement(ACTOR_REGISTRATION)
    _accept(world, world.sign(st, "regulator"), seen)
    assert seen == set() and {a.id: a for a in world.registry} == before


# ------------------------------------------------------------------ refusals


def test_oversize_is_refused_before_parsing(world: World) -> None:
    with pytest.raises(StatementTooLarge, match="over the 100-byte limit"):
        _accept(world, b"{" * 101, limits=Limits(max_envelope=100))
    body = world.sign(statement(RELEASE), "acme")
    with pytest.raises(StatementTooLarge, match="payload"):
        _accept(world, body, limits=Limits(max_payload=200))
    env = Envelope.from_json(body)
    many = Envelope(env.payload, env.payload_type, env.signatures * 5)
    with pytest.raises(StatementTooLarge, match="signatures"):
        _accept(world, many.to_json())
    with pytest.raises(StatementTooLarge, match="signatures"):
        _accept(world, many)


def _resign(world: World, payload: bytes, signer: str, payload_type: str = PAYLOAD_TYPE) -> bytes:
    return sign_envelope(payload, payload_type, [world.signers[signer]]).to_json()


def test_malformed_input_is_refused(world: World) -> None:
    st = statement(RELEASE)
    cases: list[tuple[bytes, str]] = [
        (b"not json", "not valid JSON"),
        (_resign(world, st.to_json(), "acme", "application/json"), "payload type"),
        (_resign(world, b"[]", "acme"), "must be a JSON object"),
        (_resign(world, st.to_json().replace(b"{", b"{ ", 1), "acme"), "not canonical"),
        (
            _resign(world, json.dumps(st.to_dict(), sort_keys=True).encode(), "acme"),
            "not canonical",
        ),
    ]
    bad = st.to_dict()
    bad["predicate"] = dict(bad["predicate"], version_code=-1)
    cases.append(
        (
            _resign(world, json.dumps(bad, separators=(",", ":"), sort_keys=True).encode(), "acme"),
            "version_code",
        )
    )
    other = st.to_dict() | {"predicateType": "https://example.test/unknown/v1"}
    from provenance.statements import canonical_json

    cases.append((_resign(world, canonical_json(other), "acme"), "unknown predicate type"))
    wrong_subj = st.to_dict()
    wrong_subj["subject"] = wrong_subj["subject"][:1]
    cases.append((_resign(world, canonical_json(wrong_subj), "acme"), "subjects do not match"))
    for body, match in cases:
        with pytest.raises(StatementFormatError, match=match) as e:
            _accept(world, body)
        assert isinstance(e.value, InputError)


def test_keyid_rules(world: World) -> None:
    env = Envelope.from_json(world.sign(statement(RELEASE), "acme"))
    no_keyid = Envelope(env.payload, env.payload_type, (Signature(env.signatures[0].sig, ""),))
    with pytest.raises(StatementFormatError, match="no keyid"):
        _accept(world, no_keyid.to_json())
    twice = Envelope(env.payload, env.payload_type, env.signatures * 2)
    with pytest.raises(StatementFormatError, match="signed twice"):
        _accept(world, twice.to_json())


def test_unknown_key_is_refused(world: World) -> None:
    stranger = KeySigner.generate()
    body = sign_statement(statement(RELEASE), [stranger]).to_json()
    with pytest.raises(UnknownKeyError, match="not registered") as e:
        _accept(world, body)
    assert isinstance(e.value, CheckFailed) and e.value.reason == "unknown-key"
    # One unknown co-signature is enough to refuse: the log stores no unverifiable bytes.
    env = sign_statement(statement(RELEASE), [world.signers["acme"], stranger])
    with pytest.raises(UnknownKeyError):
        _accept(world, env.to_json())


def test_key_validity_window() -> None:
    w = World()
    k = KeySigner.generate()
    w.signers["temp"] = k
    w.registry.register(
        Actor(
            "temp",
            "Temp",
            frozenset({"inspector"}),
            (ActorKey(k.public_key, NOW, NOW + timedelta(days=1)),),
        ),
        T0,
    )
    st = statement(INSPECTION, inspector="temp")
    body = w.sign(st, "temp")
    assert accept(body, w.registry, set(), policy=POLICY, now=NOW).signer.id == "temp"
    for when in (NOW - timedelta(seconds=1), NOW + timedelta(days=1)):
        with pytest.raises(UnknownKeyError, match="not valid at"):
            accept(
                body,
                w.registry,
                set(),
                policy=POLICY,
                now=when,
                window=ReplayWindow(timedelta(days=9), timedelta(days=9)),
            )


def test_rotated_key_is_retired_but_kept() -> None:
    w = World()
    old = w.signers["lab"]
    new = KeySigner.generate()
    rotation = Actor("lab", "Lab", frozenset({"inspector"}), (ActorKey(new.public_key, T0),))
    w.registry.register(rotation, NOW)
    st = statement(INSPECTION)
    with pytest.raises(UnknownKeyError, match="not valid at"):
        accept(sign_statement(st, [old]).to_json(), w.registry, set(), policy=POLICY, now=NOW)
    actor, key = w.registry.lookup(old.key_id, NOW - timedelta(days=1))
    assert actor.id == "lab" and key.valid_until == NOW
    assert accept(sign_statement(st, [new]).to_json(), w.registry, set(), policy=POLICY, now=NOW)


@pytest.mark.parametrize("what", ["payload", "signature", "keyid-swap"])
def test_bad_signature_is_refused(world: World, what: str) -> None:
    env = Envelope.from_json(world.sign(statement(INSPECTION), "lab"))
    s = env.signatures[0]
    if what == "payload":
        env = Envelope(env.payload.replace(b'"warn"', b'"pass"'), env.payload_type, env.signatures)
    elif what == "signature":
        sig = bytearray(s.sig)
        sig[-5] ^= 0x40
        env = Envelope(env.payload, env.payload_type, (Signature(bytes(sig), s.keyid),))
    else:  # claims to be the platform's key
        env = Envelope(
            env.payload, env.payload_type, (Signature(s.sig, world.signers["store"].key_id),)
        )
    with pytest.raises(EnvelopeSignatureError, match="does not verify") as e:
        _accept(world, env.to_json())
    assert e.value.reason == "bad-signature"


def test_signer_must_be_the_named_actor(world: World) -> None:
    st = statement(SHELVING)  # names "store" as the platform
    with pytest.raises(RoleError, match="names 'store' as platform, but is signed by other-store"):
        _accept(world, world.sign(st, "other-store"))


@pytest.mark.parametrize(
    "ptype,field_name,actor",
    [
        (RELEASE, "developer", "store"),
        (SHELVING, "platform", "acme"),
        (INSPECTION, "inspector", "isp"),
        (TAKEDOWN, "authority", "lab"),
        (RESTORE, "authority", "acme"),
        (SDK_REGISTRATION, "provider", "acme"),
        (DEVELOPER_REGISTRATION, "verified_by", "acme"),
        (ACTOR_REGISTRATION, "registrar", "store"),
    ],
)
def test_wrong_role_is_refused(world: World, ptype: str, field_name: str, actor: str) -> None:
    st = statement(ptype, **{field_name: actor})
    with pytest.raises(RoleError, match="may not sign") as e:
        _accept(world, world.sign(st, actor))
    assert e.value.reason == "wrong-role"


def test_role_policy_is_data(world: World, tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "policies" / "roles.toml").read_text()
    closed = text.replace(
        f'"{INSPECTION}" = ["inspector", "platform", "regulator"]', f'"{INSPECTION}" = []'
    )
    assert closed != text
    (tmp_path / "roles.toml").write_text(closed)
    policy = RolePolicy.load(tmp_path / "roles.toml")
    with pytest.raises(RoleError, match="allowed roles: none"):
        _accept(world, world.sign(statement(INSPECTION), "lab"), policy=policy)
    for broken, match in [
        ("version = 2\n", "version"),
        ("version = 1\n", "signers"),
        (text.replace('"regulator", "platform"]', '"regulator", "king"]', 1), "unknown roles"),
        (text.replace("release/v1", "relaese/v1"), "unknown predicate type"),
        (text.replace(f'"{RESTORE}" = ["regulator", "platform"]', ""), "no signer roles"),
        ("version = [", "not valid TOML"),
    ]:
        (tmp_path / "bad.toml").write_text(broken)
        with pytest.raises(PolicyError, match=match):
            RolePolicy.load(tmp_path / "bad.toml")
    with pytest.raises(PolicyError, match="cannot read"):
        RolePolicy.load(tmp_path / "absent.toml")


def test_replay_rule(world: World) -> None:
    st = statement(INSPECTION)
    body = world.sign(st, "lab")
    acc = _accept(world, body)
    seen = {acc.statement_id}
    with pytest.raises(ReplayError, match="already accepted") as e:
        _accept(world, body, seen)
    assert e.value.reason == "replay"
    # The same content with another id is a new statement; the same id re-signed is not.
    again = make_statement(
        INSPECTION, {k: v for k, v in st.predicate.items() if k != "statement_id"}, issued_at=NOW
    )
    assert _accept(world, world.sign(again, "lab"), seen)
    cosigned = world.sign(st, "lab", "store")
    with pytest.raises(ReplayError):
        _accept(world, cosigned, seen)
    # Outside the window.
    with pytest.raises(ReplayError, match="older than"):
        _accept(world, body, now=NOW + timedelta(hours=1, seconds=1))
    with pytest.raises(ReplayError, match="future"):
        _accept(world, body, now=NOW - timedelta(minutes=5, seconds=1))
    assert _accept(world, body, now=NOW + timedelta(hours=1))
    assert _accept(world, body, now=NOW - timedelta(minutes=5))


def test_actor_registration_rules() -> None:
    w = World()
    fresh = KeySigner.generate()

    def register(registrar: str, actor: Actor) -> Any:
        st = make_statement(ACTOR_REGISTRATION, actor.registration(registrar), issued_at=NOW)
        return accept(w.sign(st, registrar), w.registry, set(), policy=POLICY, now=NOW)

    key = (ActorKey(fresh.public_key, T0),)
    with pytest.raises(RoleError, match="only the registry root may grant"):
        register("regulator", Actor("reg2", "Reg 2", frozenset({"regulator"}), key))
    w.registry.apply(register(ROOT_ACTOR_ID, Actor("reg2", "Reg 2", frozenset({"regulator"}), key)))
    w.signers["reg2"] = fresh
    with pytest.raises(RoleError, match="already belongs to actor store"):
        register(
            "regulator",
            Actor(
                "thief",
                "Thief",
                frozenset({"platform"}),
                (ActorKey(w.signers["store"].public_key, T0),),
            ),
        )
    with pytest.raises(RoleError, match="only the registry root may re-register"):
        register("reg2", Actor("regulator", "R", frozenset({"platform"}), key))
    p = Actor("x", "X", frozenset({"platform"}), key).registration("regulator")
    p["actor"]["id"] = ROOT_ACTOR_ID
    with pytest.raises(RoleError, match="cannot register"):
        accept(
            w.sign(make_statement(ACTOR_REGISTRATION, p, issued_at=NOW), "regulator"),
            w.registry,
            set(),
            policy=POLICY,
            now=NOW,
        )
    # Apply: the registry changes only through accepted registrations.
    lab_key = KeySigner.generate()
    acc = register(
        "regulator",
        Actor("newlab", "New Lab", frozenset({"inspector"}), (ActorKey(lab_key.public_key, T0),)),
    )
    assert "newlab" not in w.registry
    w.registry.apply(acc)
    assert w.registry.lookup(lab_key.key_id, NOW)[0].id == "newlab"
    with pytest.raises(StatementFormatError, match="only actor-registration"):
        w.registry.apply(
            accept(w.sign(statement(INSPECTION), "lab"), w.registry, set(), policy=POLICY, now=NOW)
        )


def test_release_bundle_needs_a_trust_root(world: World) -> None:
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}
    st = statement(RELEASE, build_provenance={"sigstore_bundle": bundle})
    with pytest.raises(BuildProvenanceError, match="no trusted root") as e:
        _accept(world, world.sign(st, "acme"))
    assert isinstance(e.value, StatementRefused) and e.value.reason == "build-provenance"


def test_refusals_map_to_exit_codes() -> None:
    assert StatementFormatError.exit_code == 2 and StatementTooLarge.exit_code == 2
    for cls in (
        UnknownKeyError,
        EnvelopeSignatureError,
        RoleError,
        ReplayError,
        BuildProvenanceError,
    ):
        assert issubclass(cls, StatementRefused) and cls.exit_code == 1


def test_envelope_object_and_b64_variants_are_accepted_canonically(world: World) -> None:
    body = world.sign(statement(RELEASE), "acme")
    obj = json.loads(body)
    obj["payload"] = base64.urlsafe_b64encode(base64.b64decode(obj["payload"])).decode().rstrip("=")
    loose = json.dumps(obj, indent=1).encode()
    acc = _accept(world, loose)
    assert acc.entry == body


def _mutations(value: Any, rng: random.Random) -> Any:
    """One random structural change somewhere in a JSON value."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.3:
            out[key + "_x"] = out[key]
        else:
            out[key] = _mutations(out[key], rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        if rng.random() < 0.2:
            out_list.append(out_list[i])
        else:
            out_list[i] = _mutations(out_list[i], rng)
        return out_list
    return rng.choice([None, True, 0, -1, 2**53, "", "x" * 300, "a\x00b", [], {}, [1], {"a": 1}])


def test_hostile_statements_only_raise_provenance_errors(world: World) -> None:
    """Random but validly signed payloads, and random byte flips, fail cleanly."""
    from provenance.errors import ProvenanceError
    from provenance.statements import canonical_json

    rng = random.Random(20260301)
    docs = [statement(t).to_dict() for t in sorted(PREDICATES)]
    outcomes: dict[str, int] = {}
    for _ in range(600):
        doc = rng.choice(docs)
        mutated = _mutations(doc, rng)
        try:
            payload = canonical_json(mutated)
        except StatementFormatError:
            continue
        body = _resign(world, payload, SIGNER_OF.get(str(doc["predicateType"]), "acme"))
        try:
            _accept(world, body)
            outcomes["accepted"] = outcomes.get("accepted", 0) + 1
        except ProvenanceError as e:
            outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1
    assert outcomes.get("StatementFormatError", 0) > 300
    good = world.sign(statement(RELEASE), "acme")
    original = Envelope.from_json(good)
    for _ in range(300):
        raw = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        try:
            same = Envelope.from_json(bytes(raw)) == original
        except ProvenanceError:
            same = False
        if same:
            # e.g. a flip in base64 padding bits or JSON whitespace: the same signed
            # statement, which the log stores re-encoded canonically; not a forgery.
            continue
        with pytest.raises(ProvenanceError):
            _accept(world, bytes(raw))
