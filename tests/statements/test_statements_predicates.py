"""Every predicate validator, good and bad; subjects; the release helper; the docs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from corpus import REPO, apksig_dir, require
from stmt_helpers import APK_SHA, CERT2_SHA, CERT_SHA, NOW, REF, SDK_SHA, predicate, statement

from provenance.errors import SignatureError
from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    PREDICATES,
    RELEASE,
    RESTORE,
    SDK_REGISTRATION,
    SHELVING,
    TAKEDOWN,
    LogRef,
    Statement,
    StatementFormatError,
    Subject,
    make_statement,
    release_predicate,
    validate_statement,
)

_STEP = re.compile(r"([a-z_0-9]+)(?:\[(\d+)\])?")


def _walk(d: Any, path: str) -> tuple[Any, str | int]:
    parts = path.split(".")
    for part in parts[:-1]:
        m = _STEP.fullmatch(part)
        assert m
        d = d[m.group(1)]
        if m.group(2) is not None:
            d = d[int(m.group(2))]
    m = _STEP.fullmatch(parts[-1])
    assert m
    if m.group(2) is not None:
        return d[m.group(1)], int(m.group(2))
    return d, m.group(1)


def _set(p: dict[str, Any], path: str, value: Any) -> None:
    d, k = _walk(p, path)
    d[k] = value


def _del(p: dict[str, Any], path: str) -> None:
    d, k = _walk(p, path)
    del d[k]


DELETE = object()

# (predicate type, dotted path, new value or DELETE, error fragment)
BAD: list[tuple[str, str, Any, str]] = [
    # actor registration
    (ACTOR_REGISTRATION, "registrar", "Regulator", "registrar"),
    (ACTOR_REGISTRATION, "actor.roles", [], "1..7 items"),
    (ACTOR_REGISTRATION, "actor.roles", ["platform", "platform"], "duplicate"),
    (ACTOR_REGISTRATION, "actor.roles", ["king"], "must be one of"),
    (ACTOR_REGISTRATION, "actor.roles", ["registry_root"], "registry_root is not granted"),
    (ACTOR_REGISTRATION, "actor.id", "regulator", "cannot register itself"),
    (ACTOR_REGISTRATION, "actor.contact.email", "not-an-email", "actor.contact.email"),
    (ACTOR_REGISTRATION, "keys", [], "1..8 items"),
    (ACTOR_REGISTRATION, "keys[0].keyid", "00" * 32, "not SHA-256 of the public key"),
    (ACTOR_REGISTRATION, "keys[0].algorithm", "ed25519", "does not match the public key"),
    (ACTOR_REGISTRATION, "keys[0].public_key", "AAAA", "cannot load public key"),
    (ACTOR_REGISTRATION, "keys[0].valid_until", "2025-01-01T00:00:00Z", "after valid_from"),
    (ACTOR_REGISTRATION, "keys[0].valid_from", "2026-01-01", "UTC time"),
    (ACTOR_REGISTRATION, "keys[0].valid_from", "2026-02-30T00:00:00Z", "not a valid date"),
    (ACTOR_REGISTRATION, "supersedes", {"index": -1, "leaf_hash": "11" * 32}, "out of range"),
    (ACTOR_REGISTRATION, "supersedes", {"index": 1, "leaf_hash": "AB" * 32}, "lowercase hex"),
    (ACTOR_REGISTRATION, "supersedes", {"index": True, "leaf_hash": "11" * 32}, "integer"),
    # developer registration
    (DEVELOPER_REGISTRATION, "identity.kind", "company", "must be one of"),
    (DEVELOPER_REGISTRATION, "identity.country", "CHN", "2..2 characters"),
    (DEVELOPER_REGISTRATION, "identity.legal_name", "ACME\nLtd", "control character"),
    (DEVELOPER_REGISTRATION, "identity.verified_at", DELETE, "missing field 'verified_at'"),
    (DEVELOPER_REGISTRATION, "contact", DELETE, "missing field 'contact'"),
    (DEVELOPER_REGISTRATION, "filing.number", "", "1..64 characters"),
    (DEVELOPER_REGISTRATION, "signer_certificates", [], "1..32 items"),
    (DEVELOPER_REGISTRATION, "signer_certificates[1].sha256", CERT_SHA, "duplicate sha256"),
    (DEVELOPER_REGISTRATION, "signer_certificates[0].packages", ["not a package"], "required form"),
    (DEVELOPER_REGISTRATION, "rotations[0].to_sha256", SDK_SHA, "not one of signer_certificates"),
    (DEVELOPER_REGISTRATION, "rotations[0].from_sha256", CERT2_SHA, "same key"),
    (DEVELOPER_REGISTRATION, "rotations[0].proof", "trust me", "must be one of"),
    (DEVELOPER_REGISTRATION, "build_identities[0].issuer", "http://insecure", "required form"),
    (DEVELOPER_REGISTRATION, "surprise", 1, "unknown field"),
    # SDK registration
    (SDK_REGISTRATION, "sdk.id", "com sdkco", "required form"),
    (SDK_REGISTRATION, "sdk.version", " 4.2", "required form"),
    (SDK_REGISTRATION, "sdk.artifact_sha256", "x" * 64, "required form"),
    (SDK_REGISTRATION, "sdk.package_prefixes", [], "1..32 items"),
    (SDK_REGISTRATION, "functions", [], "1..64 items"),
    (SDK_REGISTRATION, "personal_information[0].category", "dna", "must be one of"),
    (SDK_REGISTRATION, "personal_information[0].required", "yes", "true or false"),
    (SDK_REGISTRATION, "personal_information[0].items", [], "1..32 items"),
    (SDK_REGISTRATION, "privacy_policy.url", "ftp://x", "required form"),
    # release
    (RELEASE, "developer_registration", DELETE, "missing field 'developer_registration'"),
    (RELEASE, "apk.sha256", APK_SHA.upper(), "required form"),
    (RELEASE, "apk.size", -1, "must be in"),
    (RELEASE, "package", "app", "required form"),
    (RELEASE, "version_code", 1.5, "integer"),
    (RELEASE, "version_code", "42", "integer"),
    (RELEASE, "version_code", 2**53, "must be in"),
    (RELEASE, "signer_certificates", [], "1..16 items"),
    (RELEASE, "verification.verified", False, "must be true"),
    (RELEASE, "verification.schemes", ["v5"], "must be one of"),
    (RELEASE, "verification.schemes", [], "1..5 items"),
    (RELEASE, "build_provenance", {"sigstore_bundle": {"mediaType": "x"}}, "not a Sigstore"),
    (RELEASE, "build_provenance", {"sigstore_bundle": "base64"}, "must be an object"),
    (RELEASE, "build_provenance", {}, "missing field 'sigstore_bundle'"),
    # shelving
    (SHELVING, "release", DELETE, "missing field 'release'"),
    (SHELVING, "listing.shelved_at", "yesterday", "UTC time"),
    (SHELVING, "metadata.functions", [], "1..64 items"),
    (SHELVING, "metadata.permissions[0].name", "CAMERA", "required form"),
    (SHELVING, "metadata.permissions[0].purpose", "", "1..4096"),
    (SHELVING, "metadata.permissions", [{"name": "a.B", "purpose": "x"}] * 2, "duplicate name"),
    (SHELVING, "metadata.sdks[0].registration", {"index": 1}, "needs index and leaf_hash"),
    (SHELVING, "metadata.privacy_policy", DELETE, "missing field 'privacy_policy'"),
    (SHELVING, "reviewer", DELETE, "missing field 'reviewer'"),
    # inspection
    (INSPECTION, "facts.sha256", "", "64..64 characters"),
    (INSPECTION, "findings[0].severity", "urgent", "must be one of"),
    (INSPECTION, "findings[0].id", "has space", "required form"),
    (INSPECTION, "verdict", "ok", "must be one of"),
    (INSPECTION, "target", "7", "must be an object"),
    # takedown
    (TAKEDOWN, "scope.kind", "everything", "must be one of"),
    (TAKEDOWN, "scope", {"kind": "app"}, "kind 'app' takes"),
    (TAKEDOWN, "scope", {"kind": "app", "package": "a.b", "apk_sha256": APK_SHA}, "kind 'app'"),
    (TAKEDOWN, "scope", {"kind": "version", "package": "a.b"}, "kind 'version'"),
    (TAKEDOWN, "scope", {"kind": "sdk", "package": "a.b"}, "kind 'sdk'"),
    (TAKEDOWN, "reason.code", "dislike", "must be one of"),
    (TAKEDOWN, "evidence", [], "1..64 items"),
    (TAKEDOWN, "evidence", [REF, REF], "duplicate"),
    (TAKEDOWN, "effective_at", DELETE, "missing field 'effective_at'"),
    # restore
    (RESTORE, "takedown", DELETE, "missing field 'takedown'"),
    (RESTORE, "reason.code", "malware", "must be one of"),
    (RESTORE, "scope", {"kind": "sdk"}, "kind 'sdk'"),
    # common fields
    (RELEASE, "statement_id", "short", "32..32"),
    (RELEASE, "statement_id", "G" * 32, "required form"),
    (RELEASE, "issued_at", "2026-03-01T12:00:00+00:00", "UTC time"),
]


@pytest.mark.parametrize("ptype", sorted(PREDICATES))
def test_good_examples_validate(ptype: str) -> None:
    st = statement(ptype)
    assert validate_statement(st) is PREDICATES[ptype]
    again = Statement.from_json(st.to_json())
    assert again == st and again.to_json() == st.to_json()
    assert re.fullmatch(r"[0-9a-f]{32}", st.statement_id) and st.issued_at == "2026-03-01T12:00:00Z"


@pytest.mark.parametrize(
    "ptype,path,value,match",
    BAD,
    ids=[f"{t.split('/')[-2]}:{p}:{i}" for i, (t, p, _, _) in enumerate(BAD)],
)
def test_bad_predicates(ptype: str, path: str, value: Any, match: str) -> None:
    p = predicate(ptype)
    p["statement_id"] = "ab" * 16
    p["issued_at"] = "2026-03-01T12:00:00Z"
    if value is DELETE:
        _del(p, path)
    else:
        _set(p, path, value)
    with pytest.raises(StatementFormatError, match=re.escape(match)):
        make_statement(ptype, p)


def test_every_predicate_type_has_bad_cases() -> None:
    assert {t for t, *_ in BAD} == set(PREDICATES)


def test_subjects_are_derived() -> None:
    rel = statement(RELEASE)
    assert rel.subjects == (
        Subject("apk:com.acme.app", APK_SHA),
        Subject.named("package:com.acme.app"),
    )
    assert (
        Subject.named("package:com.acme.app").sha256
        == hashlib.sha256(b"package:com.acme.app").hexdigest()
    )
    dev = statement(DEVELOPER_REGISTRATION)
    assert {s.name for s in dev.subjects} == {"actor:acme", f"cert:{CERT_SHA}", f"cert:{CERT2_SHA}"}
    sdk = statement(SDK_REGISTRATION)
    assert Subject("sdk:com.sdkco:analytics@4.2.0", SDK_SHA) in sdk.subjects
    app = statement(TAKEDOWN, scope={"kind": "app", "package": "com.acme.app"})
    assert app.subjects == (Subject.named("package:com.acme.app"),)
    sdk_down = statement(TAKEDOWN, scope={"kind": "sdk", "sdk_id": "com.sdkco:analytics"})
    assert sdk_down.subjects == (Subject.named("sdk:com.sdkco:analytics"),)


def test_statement_layer_checks() -> None:
    st = statement(RELEASE)
    wrong_subjects = Statement(RELEASE, (Subject("apk:com.acme.app", "00" * 32),), st.predicate)
    with pytest.raises(StatementFormatError, match="subjects do not match"):
        validate_statement(wrong_subjects)
    with pytest.raises(StatementFormatError, match="unknown predicate type"):
        validate_statement(Statement("https://example.test/other/v1", st.subjects, st.predicate))
    doc = st.to_dict()
    for broken, match in [
        ({**doc, "_type": "https://in-toto.io/Statement/v0.1"}, "_type"),
        ({**doc, "extra": 1}, "unknown"),
        ({**doc, "subject": []}, "non-empty"),
        ({**doc, "subject": [{"name": "x", "digest": {"sha1": "00"}}]}, "sha256"),
        ({**doc, "subject": [{"name": "x", "digest": {"sha256": "00"}, "uri": "u"}]}, "exactly"),
        ({**doc, "predicateType": "http://insecure/v1"}, "https URI"),
        ({**doc, "predicate": []}, "JSON object"),
    ]:
        with pytest.raises(StatementFormatError, match=match):
            Statement.from_dict(broken)
    with pytest.raises(StatementFormatError, match="twice"):
        Statement(RELEASE, (st.subjects[0], st.subjects[0]), st.predicate)


def test_make_statement_keeps_given_id_and_time() -> None:
    p = predicate(INSPECTION)
    a = make_statement(INSPECTION, p, statement_id="cd" * 16, issued_at=NOW)
    b = make_statement(INSPECTION, a.predicate)
    assert a == b and a.to_json() == b.to_json()
    assert make_statement(INSPECTION, p).statement_id != make_statement(INSPECTION, p).statement_id


def test_release_predicate_from_verify_apk() -> None:
    apk = require(apksig_dir() / "golden-aligned-v1v2v3-out.apk")
    p = release_predicate(apk, developer="acme", developer_registration=LogRef(3, b"\x01" * 32))
    st = make_statement(RELEASE, p, issued_at=NOW)
    assert p["package"] == "android.appsecurity.cts.tinyapp" and p["version_code"] == 10
    assert p["apk"] == {
        "sha256": hashlib.sha256(apk.read_bytes()).hexdigest(),
        "size": apk.stat().st_size,
    }
    assert p["verification"]["schemes"] == ["v1", "v2", "v3"] and p["version_name"] == "1.0"
    assert len(p["signer_certificates"]) == 1
    assert st.subjects[0].sha256 == p["apk"]["sha256"]


def test_release_predicate_refuses_unverified_apk() -> None:
    apk = require(apksig_dir() / "golden-aligned-in.apk")  # the unsigned input
    with pytest.raises(SignatureError, match="does not verify"):
        release_predicate(apk, developer="acme", developer_registration=LogRef(3, b"\x01" * 32))


def test_docs_describe_every_field() -> None:
    """Each predicate's section of docs/statements.md names every field of its schema."""
    doc = (REPO / "docs" / "statements.md").read_text(encoding="utf-8")
    sections = re.split(r"\n(?=###? )", doc)
    for spec in PREDICATES.values():
        section = next(
            s for s in sections if s.startswith("### ") and f"{spec.step}/v1" in s.splitlines()[0]
        )
        assert spec.type in section
        for name in spec.schema.field_names():
            if name in ("statement_id", "issued_at"):  # the common fields, documented once
                assert f"`{name}`" in doc
                continue
            last = name.rsplit(".", 1)[-1]
            assert f"`{name}`" in section or f"`{last}`" in section, f"{spec.step}: {name}"


def test_role_policy_file_covers_every_predicate() -> None:
    text = (REPO / "policies" / "roles.toml").read_text()
    for ptype in PREDICATES:
        assert f'"{ptype}"' in text
    assert Path(REPO / "policies" / "roles.toml").exists()
