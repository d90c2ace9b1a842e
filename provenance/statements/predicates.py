"""One versioned predicate type per life-cycle step, with strict schemas.

Every predicate is a JSON object that starts with ``statement_id`` (128 random bits,
hex) and ``issued_at`` (UTC), which the replay rule uses, and names the actor who
signs it in one field (:attr:`PredicateSpec.signer_field`); acceptance checks that the
envelope's signer is that actor. Subjects are never chosen by hand: each spec derives
them from the predicate (:meth:`PredicateSpec.subjects`), so the index a trace query
uses always agrees with the content. The schemas are documented field by field in
``docs/statements.md``; a new version of a step gets a new URI (``.../v2``) and both
can be accepted side by side.
"""

from __future__ import annotations

import copy
import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import provenance
from provenance.errors import SignatureError
from provenance.statements.errors import StatementFormatError
from provenance.statements.intoto import Statement, Subject
from provenance.statements.keys import ALGORITHMS, key_algorithm, load_public_key
from provenance.statements.keys import key_id as compute_key_id
from provenance.statements.logref import LogRef
from provenance.statements.schema import (
    Arr,
    Bool,
    Int,
    JsonObj,
    Obj,
    Ref,
    Schema,
    Str,
    Time,
    format_time,
    parse_time,
)

if TYPE_CHECKING:
    from provenance.apk.verify import ApkVerificationResult

__all__ = [
    "ACTOR_REGISTRATION",
    "DEVELOPER_REGISTRATION",
    "INSPECTION",
    "PREDICATES",
    "PREDICATE_PREFIX",
    "RELEASE",
    "RESTORE",
    "ROLES",
    "SDK_REGISTRATION",
    "SHELVING",
    "TAKEDOWN",
    "PredicateSpec",
    "issued_at_time",
    "make_statement",
    "release_predicate",
    "validate_statement",
]

PREDICATE_PREFIX = "https://apk-provenance.dev/predicates/"
ACTOR_REGISTRATION = PREDICATE_PREFIX + "actor-registration/v1"
DEVELOPER_REGISTRATION = PREDICATE_PREFIX + "developer-registration/v1"
SDK_REGISTRATION = PREDICATE_PREFIX + "sdk-registration/v1"
RELEASE = PREDICATE_PREFIX + "release/v1"
SHELVING = PREDICATE_PREFIX + "shelving/v1"
INSPECTION = PREDICATE_PREFIX + "inspection/v1"
TAKEDOWN = PREDICATE_PREFIX + "takedown/v1"
RESTORE = PREDICATE_PREFIX + "restore/v1"

ROLES = (
    "registry_root",
    "regulator",
    "platform",
    "developer",
    "sdk_provider",
    "inspector",
    "access_provider",
)
"""Actor roles. ``registry_root`` is the out-of-band trust anchor of the actor registry."""

# ------------------------------------------------------------------ field types

HEX64 = Str(64, r"[0-9a-f]{64}", min_len=64, doc="SHA-256, 64 lowercase hex digits")
STATEMENT_ID = Str(32, r"[0-9a-f]{32}", min_len=32, doc="128 random bits, 32 lowercase hex")
ACTOR_ID = Str(64, r"[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?", doc="actor id")
PACKAGE = Str(255, r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+", doc="package name")
PERMISSION = Str(255, r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+", doc="permission name")
SDK_ID = Str(255, r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?", doc="SDK id (group:artifact)")
JAVA_PREFIX = Str(255, r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*")
VERSION = Str(128, r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?", doc="version string")
URL = Str(2048, r"https?://[\x21-\x7e]+", doc="http(s) URL")
HTTPS = Str(2048, r"https://[\x21-\x7e]+", doc="https URL")
EMAIL = Str(254, r"[^@\s]{1,64}@[^@\s]{1,189}", doc="email address")
SHORT = Str(256)
TEXT = Str(4096, multiline=True)
COUNTRY = Str(2, r"[A-Z]{2}", min_len=2, doc="ISO 3166-1 alpha-2")
ROLE = Str(choices=ROLES)
KEY_ALGORITHM = Str(choices=ALGORITHMS)
PII_CATEGORY = Str(
    choices=(
        "personal",
        "financial",
        "location",
        "email_text_message",
        "photo_video",
        "audio",
        "storage",
        "health_fitness",
        "contacts",
        "calendar",
        "identifiers",
        "app_performance",
        "actions_in_app",
        "search_and_browsing",
    ),
    doc="Android data-safety category",
)
APK_SCHEMES = Str(choices=("v1", "v2", "v3", "v3.1", "v4"))
TIME = Time()
LOG_REF = Ref()
COUNT = Int()

CONTACT = Obj(
    {"email": EMAIL},
    {"phone": Str(32, r"\+?[0-9 ()-]{3,31}"), "address": TEXT, "website": URL},
)
FUNCTION = Obj({"name": SHORT, "description": TEXT})
PRIVACY_POLICY = Obj({"url": URL}, {"sha256": HEX64})
APK = Obj({"sha256": HEX64}, {"size": COUNT})

SCOPE = Obj(
    {"kind": Str(choices=("app", "version", "sdk"))},
    {
        "package": PACKAGE,
        "apk_sha256": HEX64,
        "version_code": COUNT,
        "sdk_id": SDK_ID,
        "sdk_version": VERSION,
    },
)
_SCOPE_FIELDS = {
    "app": ({"package"}, set()),
    "version": ({"package", "apk_sha256"}, {"version_code"}),
    "sdk": ({"sdk_id"}, {"sdk_version"}),
}


def _common(fields: Mapping[str, Schema]) -> dict[str, Schema]:
    return {"statement_id": STATEMENT_ID, "issued_at": TIME, **fields}


# -------------------------------------------------------------------- schemas

ACTOR_REGISTRATION_SCHEMA = Obj(
    _common(
        {
            "registrar": ACTOR_ID,
            "actor": Obj(
                {
                    "id": ACTOR_ID,
                    "name": SHORT,
                    "roles": Arr(ROLE, 1, len(ROLES), unique=True),
                },
                {"contact": CONTACT},
            ),
            "keys": Arr(
                Obj(
                    {
                        "keyid": HEX64,
                        "algorithm": KEY_ALGORITHM,
                        "public_key": Str(512, r"[A-Za-z0-9+/]+={0,2}"),
                        "valid_from": TIME,
                    },
                    {"valid_until": TIME},
                ),
                1,
                8,
                unique_key="keyid",
            ),
        }
    ),
    {"supersedes": LOG_REF},
)

DEVELOPER_REGISTRATION_SCHEMA = Obj(
    _common(
        {
            "verified_by": ACTOR_ID,
            "developer": ACTOR_ID,
            "identity": Obj(
                {
                    "kind": Str(choices=("organization", "individual")),
                    "legal_name": SHORT,
                    "country": COUNTRY,
                    "verification_method": SHORT,
                    "verified_at": TIME,
                },
                {"registration_number": Str(64)},
            ),
            "contact": CONTACT,
            "signer_certificates": Arr(
                Obj({"sha256": HEX64}, {"packages": Arr(PACKAGE, 1, 256, unique=True)}),
                1,
                32,
                unique_key="sha256",
            ),
            "rotations": Arr(
                Obj(
                    {
                        "from_sha256": HEX64,
                        "to_sha256": HEX64,
                        "at": TIME,
                        "proof": Str(choices=("apk-lineage", "declaration")),
                    }
                ),
                0,
                32,
            ),
        }
    ),
    {
        "filing": Obj({"number": Str(64), "authority": SHORT}),
        "build_identities": Arr(Obj({"issuer": HTTPS, "identity": Str(1024)}), 1, 16, unique=True),
        "supersedes": LOG_REF,
    },
)

SDK_REGISTRATION_SCHEMA = Obj(
    _common(
        {
            "provider": ACTOR_ID,
            "sdk": Obj(
                {
                    "id": SDK_ID,
                    "name": SHORT,
                    "version": VERSION,
                    "developer": SHORT,
                    "artifact_sha256": HEX64,
                    "package_prefixes": Arr(JAVA_PREFIX, 1, 32, unique=True),
                }
            ),
            "functions": Arr(FUNCTION, 1, 64, unique_key="name"),
            "personal_information": Arr(
                Obj(
                    {
                        "category": PII_CATEGORY,
                        "items": Arr(SHORT, 1, 32, unique=True),
                        "purpose": TEXT,
                        "required": Bool(),
                    },
                    {"shared_with": Arr(SHORT, 1, 32, unique=True), "retention": SHORT},
                ),
                0,
                64,
            ),
            "privacy_policy": PRIVACY_POLICY,
        }
    ),
    {"supersedes": LOG_REF},
)

RELEASE_SCHEMA = Obj(
    _common(
        {
            "developer": ACTOR_ID,
            "developer_registration": LOG_REF,
            "apk": APK,
            "package": PACKAGE,
            "version_code": COUNT,
            "signer_certificates": Arr(HEX64, 1, 16, unique=True),
            "verification": Obj(
                {
                    "verified": Bool(const=True),
                    "schemes": Arr(APK_SCHEMES, 1, 5, unique=True),
                    "verifier": SHORT,
                },
                {"min_sdk": COUNT, "max_sdk": COUNT},
            ),
        }
    ),
    {
        "version_name": VERSION,
        "build_provenance": Obj(
            {"sigstore_bundle": JsonObj(96 * 1024, doc="Sigstore bundle (JSON object)")}
        ),
    },
)

SHELVING_SCHEMA = Obj(
    _common(
        {
            "platform": ACTOR_ID,
            "release": LOG_REF,
            "apk": APK,
            "package": PACKAGE,
            "version_code": COUNT,
            "listing": Obj({"id": SHORT, "shelved_at": TIME}, {"url": URL, "channel": SHORT}),
            "metadata": Obj(
                {
                    "app_name": SHORT,
                    "developer_name": SHORT,
                    "functions": Arr(FUNCTION, 1, 64, unique_key="name"),
                    "permissions": Arr(
                        Obj({"name": PERMISSION, "purpose": TEXT}), 0, 256, unique_key="name"
                    ),
                    "sdks": Arr(
                        Obj(
                            {"id": SDK_ID, "name": SHORT},
                            {"version": VERSION, "registration": LOG_REF},
                        ),
                        0,
                        128,
                    ),
                    "privacy_policy": PRIVACY_POLICY,
                },
                {"filing_number": Str(64)},
            ),
            "reviewer": Obj({"id": SHORT}, {"name": SHORT}),
        }
    ),
)

INSPECTION_SCHEMA = Obj(
    _common(
        {
            "inspector": ACTOR_ID,
            "target": LOG_REF,
            "apk": APK,
            "package": PACKAGE,
            "facts": Obj({"sha256": HEX64, "tool": SHORT}, {"uri": URL}),
            "findings": Arr(
                Obj(
                    {
                        "id": Str(128, r"[A-Za-z0-9_.:-]+"),
                        "severity": Str(choices=("info", "low", "medium", "high", "critical")),
                        "summary": TEXT,
                    },
                    {"evidence": Arr(TEXT, 1, 32)},
                ),
                0,
                256,
            ),
            "verdict": Str(choices=("pass", "warn", "fail")),
        }
    ),
)

TAKEDOWN_SCHEMA = Obj(
    _common(
        {
            "authority": ACTOR_ID,
            "scope": SCOPE,
            "reason": Obj(
                {
                    "code": Str(
                        choices=(
                            "malware",
                            "privacy",
                            "unfiled",
                            "fraud",
                            "illegal_content",
                            "security",
                            "policy",
                            "other",
                        )
                    ),
                    "text": TEXT,
                },
                {"legal_basis": TEXT},
            ),
            "evidence": Arr(LOG_REF, 1, 64, unique=True),
            "effective_at": TIME,
        }
    ),
)

RESTORE_SCHEMA = Obj(
    _common(
        {
            "authority": ACTOR_ID,
            "scope": SCOPE,
            "takedown": LOG_REF,
            "reason": Obj(
                {
                    "code": Str(choices=("resolved", "appeal_granted", "error", "other")),
                    "text": TEXT,
                },
                {"legal_basis": TEXT},
            ),
            "evidence": Arr(LOG_REF, 0, 64, unique=True),
            "effective_at": TIME,
        }
    ),
)


# ------------------------------------------------------ cross-field checks, subjects


def _check_keys(p: dict[str, Any]) -> None:
    for i, k in enumerate(p["keys"]):
        path = f"predicate.keys[{i}]"
        key = load_public_key(k["public_key"])
        if compute_key_id(key) != k["keyid"]:
            raise StatementFormatError(f"{path}.keyid: is not SHA-256 of the public key")
        if key_algorithm(key) != k["algorithm"]:
            raise StatementFormatError(f"{path}.algorithm: does not match the public key")
        if "valid_until" in k and k["valid_until"] <= k["valid_from"]:
            raise StatementFormatError(f"{path}.valid_until: must be after valid_from")
    if p["actor"]["id"] == p["registrar"]:
        raise StatementFormatError("predicate.actor.id: an actor cannot register itself")
    if "registry_root" in p["actor"]["roles"]:
        raise StatementFormatError("predicate.actor.roles: registry_root is not granted")


def _check_developer(p: dict[str, Any]) -> None:
    certs = {c["sha256"] for c in p["signer_certificates"]}
    for i, r in enumerate(p["rotations"]):
        if r["to_sha256"] not in certs:
            raise StatementFormatError(
                f"predicate.rotations[{i}].to_sha256: is not one of signer_certificates"
            )
        if r["from_sha256"] == r["to_sha256"]:
            raise StatementFormatError(f"predicate.rotations[{i}]: rotates to the same key")


def _check_scope(p: dict[str, Any]) -> None:
    scope = p["scope"]
    needed, allowed = _SCOPE_FIELDS[scope["kind"]]
    present = set(scope) - {"kind"}
    if not needed <= present or present - needed - allowed:
        raise StatementFormatError(
            f"predicate.scope: kind {scope['kind']!r} takes {sorted(needed)} "
            f"(optionally {sorted(allowed)}), got {sorted(present)}"
        )


def _check_release(p: dict[str, Any]) -> None:
    bundle = p.get("build_provenance", {}).get("sigstore_bundle")
    if bundle is not None:
        media = bundle.get("mediaType")
        if not isinstance(media, str) or not media.startswith(
            "application/vnd.dev.sigstore.bundle"
        ):
            raise StatementFormatError(
                "predicate.build_provenance.sigstore_bundle: not a Sigstore bundle (mediaType)"
            )


def _apk_subjects(p: dict[str, Any]) -> list[Subject]:
    return [
        Subject("apk:" + p["package"], p["apk"]["sha256"]),
        Subject.named("package:" + p["package"]),
    ]


def _scope_subjects(p: dict[str, Any]) -> list[Subject]:
    scope = p["scope"]
    if scope["kind"] == "sdk":
        return [Subject.named("sdk:" + scope["sdk_id"])]
    out = [Subject.named("package:" + scope["package"])]
    if scope["kind"] == "version":
        out.append(Subject("apk:" + scope["package"], scope["apk_sha256"]))
    return out


@dataclass(frozen=True)
class PredicateSpec:
    """A predicate type: its schema, the field naming the signer, its subjects."""

    type: str
    schema: Obj
    signer_field: str
    derive_subjects: Callable[[dict[str, Any]], list[Subject]]
    extra_check: Callable[[dict[str, Any]], None] | None = None

    @property
    def step(self) -> str:
        """The life-cycle step name, e.g. ``release``."""
        return self.type.removeprefix(PREDICATE_PREFIX).rsplit("/", 1)[0]

    def validate(self, predicate: object) -> None:
        """Check the schema, then the cross-field rules."""
        self.schema.check(predicate, "predicate")
        assert isinstance(predicate, dict)
        if self.extra_check is not None:
            self.extra_check(predicate)

    def subjects(self, predicate: dict[str, Any]) -> tuple[Subject, ...]:
        """The subjects a statement with this (valid) predicate must have, sorted."""
        return tuple(sorted(set(self.derive_subjects(predicate)), key=lambda s: (s.name, s.sha256)))


PREDICATES: dict[str, PredicateSpec] = {
    s.type: s
    for s in (
        PredicateSpec(
            ACTOR_REGISTRATION,
            ACTOR_REGISTRATION_SCHEMA,
            "registrar",
            lambda p: [
                Subject.named("actor:" + p["actor"]["id"]),
                *(Subject("key:" + k["keyid"], k["keyid"]) for k in p["keys"]),
            ],
            _check_keys,
        ),
        PredicateSpec(
            DEVELOPER_REGISTRATION,
            DEVELOPER_REGISTRATION_SCHEMA,
            "verified_by",
            lambda p: [
                Subject.named("actor:" + p["developer"]),
                *(Subject("cert:" + c["sha256"], c["sha256"]) for c in p["signer_certificates"]),
            ],
            _check_developer,
        ),
        PredicateSpec(
            SDK_REGISTRATION,
            SDK_REGISTRATION_SCHEMA,
            "provider",
            lambda p: [
                Subject.named("sdk:" + p["sdk"]["id"]),
                Subject(f"sdk:{p['sdk']['id']}@{p['sdk']['version']}", p["sdk"]["artifact_sha256"]),
            ],
        ),
        PredicateSpec(RELEASE, RELEASE_SCHEMA, "developer", _apk_subjects, _check_release),
        PredicateSpec(SHELVING, SHELVING_SCHEMA, "platform", _apk_subjects),
        PredicateSpec(INSPECTION, INSPECTION_SCHEMA, "inspector", _apk_subjects),
        PredicateSpec(TAKEDOWN, TAKEDOWN_SCHEMA, "authority", _scope_subjects, _check_scope),
        PredicateSpec(RESTORE, RESTORE_SCHEMA, "authority", _scope_subjects, _check_scope),
    )
}
"""Every predicate type this version accepts, by URI."""


def _spec(predicate_type: str) -> PredicateSpec:
    spec = PREDICATES.get(predicate_type)
    if spec is None:
        raise StatementFormatError(f"unknown predicate type {predicate_type[:120]!r}")
    return spec


def validate_statement(statement: Statement) -> PredicateSpec:
    """Check the predicate against its type's schema and the subjects against it."""
    spec = _spec(statement.predicate_type)
    spec.validate(statement.predicate)
    if statement.subjects != spec.subjects(statement.predicate):
        raise StatementFormatError(
            f"subjects do not match the {spec.step} predicate: expected "
            f"{[s.name for s in spec.subjects(statement.predicate)]}"
        )
    return spec


def make_statement(
    predicate_type: str,
    predicate: Mapping[str, Any],
    *,
    statement_id: str | None = None,
    issued_at: datetime | None = None,
) -> Statement:
    """A validated statement with derived subjects, a fresh id and the current time.

    ``predicate`` is given without ``statement_id``/``issued_at`` (or with them, when
    re-creating a statement exactly).
    """
    spec = _spec(predicate_type)
    body = copy.deepcopy(dict(predicate))
    if statement_id is not None or "statement_id" not in body:
        body["statement_id"] = statement_id or secrets.token_hex(16)
    if issued_at is not None or "issued_at" not in body:
        body["issued_at"] = format_time(issued_at or datetime.now(UTC))
    spec.validate(body)
    statement = Statement(predicate_type, spec.subjects(body), body)
    validate_statement(statement)
    return statement


def release_predicate(
    apk_path: str | os.PathLike[str],
    *,
    developer: str,
    developer_registration: LogRef,
    sigstore_bundle: Mapping[str, Any] | None = None,
    result: ApkVerificationResult | None = None,
) -> dict[str, Any]:
    """The release predicate for an APK file, from :func:`provenance.apk.verify.verify_apk`.

    Hashes the file, reads package and version from its manifest and records the
    verifier's result; pass ``result`` to reuse a verification already done on the same
    file. An APK that does not verify raises :class:`~provenance.errors.SignatureError`:
    a developer cannot release it.
    """
    from provenance.apk.algorithms import SDK_MAX
    from provenance.apk.manifest import parse_manifest
    from provenance.apk.verify import read_manifest, verify_apk
    from provenance.apk.zip import ApkFile

    h = hashlib.sha256()
    size = 0
    with open(apk_path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    if result is None:
        result = verify_apk(apk_path)
    if not result.verified:
        errors = "; ".join(str(e) for e in result.all_errors()[:3]) or "not verified"
        raise SignatureError(f"{os.fspath(apk_path)} does not verify: {errors}")
    with ApkFile(apk_path) as apk:
        manifest = parse_manifest(read_manifest(apk))
    if manifest.package is None or manifest.version_code is None:
        raise StatementFormatError(f"{os.fspath(apk_path)}: manifest has no package or versionCode")
    verification: dict[str, Any] = {
        "verified": True,
        "schemes": result.verified_schemes,
        "verifier": f"apkprov {provenance.__version__}",
        "min_sdk": result.min_sdk,
    }
    if result.max_sdk != SDK_MAX:  # SDK_MAX means no upper bound was asked for
        verification["max_sdk"] = result.max_sdk
    predicate: dict[str, Any] = {
        "developer": developer,
        "developer_registration": developer_registration.to_dict(),
        "apk": {"sha256": h.hexdigest(), "size": size},
        "package": manifest.package,
        "version_code": manifest.version_code,
        "signer_certificates": [c.sha256 for c in result.signer_certs],
        "verification": verification,
    }
    if manifest.version_name:
        predicate["version_name"] = manifest.version_name
    if sigstore_bundle is not None:
        predicate["build_provenance"] = {"sigstore_bundle": dict(sigstore_bundle)}
    return predicate


def issued_at_time(statement: Statement) -> datetime:
    """The statement's ``issued_at`` as an aware datetime."""
    return parse_time(statement.issued_at, "predicate.issued_at")
