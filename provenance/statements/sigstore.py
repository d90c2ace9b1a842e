"""Offline verification of the Sigstore bundle a release may carry (build provenance).

A release statement can embed a Sigstore bundle (``build_provenance.sigstore_bundle``)
for the APK: either a DSSE bundle whose in-toto statement is SLSA provenance with the
APK's SHA-256 among its subjects, or a message-signature bundle over the APK itself.
Before the release is accepted the bundle is verified with sigstore-python against a
*configured* trusted root (``trusted_root.json``: Fulcio CAs, CT logs, Rekor logs,
timestamp authorities) -- the public-good roots, a staging root, or a private
deployment's own -- and never fetched: ``Verifier(trusted_root=...)`` does no TUF
refresh and verification uses only the bundle's inclusion proof, checkpoint, SET or
RFC 3161 timestamps. The signing certificate must match one of the configured
identities (OIDC issuer + SAN), unless ``allow_any_identity`` is set explicitly.

sigstore-python is an optional dependency (extra ``sigstore``), imported only here and
only when a bundle has to be verified.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.statements.canonical import parse_json
from provenance.statements.errors import BuildProvenanceError, StatementFormatError

if TYPE_CHECKING:
    from sigstore.verify import Verifier

__all__ = [
    "SLSA_PROVENANCE_TYPES",
    "BuildIdentity",
    "BuildProvenance",
    "SigstorePolicy",
    "verify_build_provenance",
]

SLSA_PROVENANCE_TYPES = ("https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2")
_INTOTO_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"


@dataclass(frozen=True)
class BuildIdentity:
    """An accepted signer: the certificate's OIDC issuer and SAN (email or URI)."""

    issuer: str
    identity: str


@dataclass(frozen=True)
class SigstorePolicy:
    """The trust root and identities build provenance is verified against.

    ``require`` makes build provenance mandatory for every release.
    """

    trusted_root: Path
    identities: tuple[BuildIdentity, ...] = ()
    allow_any_identity: bool = False
    require: bool = False
    predicate_types: tuple[str, ...] = SLSA_PROVENANCE_TYPES
    _verifier: list[Verifier] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_root", Path(self.trusted_root))
        object.__setattr__(self, "identities", tuple(self.identities))
        if not self.identities and not self.allow_any_identity:
            raise ValueError("give the accepted build identities, or allow_any_identity=True")

    def verifier(self) -> Verifier:
        """The sigstore-python verifier for the trusted root (loaded once, offline)."""
        if not self._verifier:
            sigstore = _sigstore()
            try:
                root = sigstore.models.TrustedRoot.from_file(os.fspath(self.trusted_root))
                self._verifier.append(sigstore.verify.Verifier(trusted_root=root))
            except OSError as e:
                raise BuildProvenanceError(
                    f"cannot read trusted root {self.trusted_root}: {e.strerror}"
                ) from None
            except Exception as e:  # sigstore/pydantic raise many types for bad roots
                raise BuildProvenanceError(
                    f"trusted root {self.trusted_root} is not usable: {e}"
                ) from None
        return self._verifier[0]


@dataclass(frozen=True)
class BuildProvenance:
    """What a verified bundle established about the APK's build."""

    kind: str  # "dsse" or "message_signature"
    issuer: str | None
    identities: tuple[str, ...]
    predicate_type: str | None
    log_index: int
    log_id: str


class _Modules:
    """sigstore-python's modules, imported on first use."""

    def __init__(self) -> None:
        import sigstore.hashes
        import sigstore.models
        import sigstore.verify
        import sigstore.verify.policy
        from sigstore_models.common.v1 import HashAlgorithm

        self.hashes = sigstore.hashes
        self.models = sigstore.models
        self.verify = sigstore.verify
        self.policy = sigstore.verify.policy
        self.sha256 = HashAlgorithm.SHA2_256


_MODULES: list[_Modules] = []


def _sigstore() -> _Modules:
    if not _MODULES:
        try:
            _MODULES.append(_Modules())
        except ImportError:
            raise BuildProvenanceError(
                "verifying build provenance needs sigstore-python: "
                "pip install 'apk-provenance[sigstore]'"
            ) from None
    return _MODULES[0]


def _policy(policy: SigstorePolicy) -> Any:
    mods = _sigstore()
    if policy.allow_any_identity and not policy.identities:
        return mods.policy.UnsafeNoOp()
    return mods.policy.AnyOf(
        [mods.policy.Identity(identity=i.identity, issuer=i.issuer) for i in policy.identities]
    )


def _certificate_identity(cert: Any) -> tuple[str | None, tuple[str, ...]]:
    from cryptography import x509

    issuer: str | None = None
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if oid == _OID_ISSUER_V1 and issuer is None:
            issuer = bytes(ext.value.value).decode("utf-8", "replace")
        elif oid == _OID_ISSUER_V2:
            raw = bytes(ext.value.value)
            if len(raw) > 2 and raw[0] == 0x0C and raw[1] < 0x80:  # short-form UTF8String
                issuer = raw[2 : 2 + raw[1]].decode("utf-8", "replace")
    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans.extend(san.get_values_for_type(x509.RFC822Name))
        sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        pass
    return issuer, tuple(sans)


def _check_slsa_payload(payload: bytes, apk_sha256: str, policy: SigstorePolicy) -> str:
    try:
        statement = parse_json(payload, max_size=256 * 1024, what="build provenance statement")
    except StatementFormatError as e:
        raise BuildProvenanceError(f"build provenance: {e}") from None
    if not isinstance(statement, dict) or statement.get("_type") not in _INTOTO_TYPES:
        raise BuildProvenanceError("build provenance is not an in-toto statement")
    ptype = statement.get("predicateType")
    if ptype not in policy.predicate_types:
        raise BuildProvenanceError(
            f"build provenance predicate type {str(ptype)[:100]!r} is not one of "
            f"{', '.join(policy.predicate_types)}"
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == apk_sha256
        for s in subjects
    ):
        raise BuildProvenanceError(
            f"build provenance does not name the APK (sha256 {apk_sha256}) as a subject"
        )
    return str(ptype)


def verify_build_provenance(
    bundle: Mapping[str, Any] | bytes, apk_sha256: str, policy: SigstorePolicy
) -> BuildProvenance:
    """Verify ``bundle`` offline for the APK with digest ``apk_sha256`` (lowercase hex).

    Raises :class:`BuildProvenanceError` when the bundle is malformed, does not chain
    to the trusted root, is signed by an identity not in the policy, or is about
    another artifact.
    """
    mods = _sigstore()
    raw = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode("utf-8")
    digest = bytes.fromhex(apk_sha256)
    verifier = policy.verifier()
    try:
        parsed = mods.models.Bundle.from_json(raw)
    except Exception as e:  # InvalidBundle, pydantic ValidationError, ValueError
        raise BuildProvenanceError(f"Sigstore bundle is malformed: {e}") from None
    kind = "dsse" if parsed._dsse_envelope is not None else "message_signature"
    issuer, sans = _certificate_identity(parsed.signing_certificate)
    if not policy.allow_any_identity and not any(
        i.issuer == issuer and i.identity in sans for i in policy.identities
    ):
        raise BuildProvenanceError(
            f"the bundle is signed by {', '.join(sans) or 'no SAN'} (issuer {issuer}), "
            "which is not an accepted build identity"
        )
    predicate_type: str | None = None
    try:
        if kind == "dsse":
            payload_type, payload = verifier.verify_dsse(parsed, _policy(policy))
        else:
            hashed = mods.hashes.Hashed(algorithm=mods.sha256, digest=digest)
            verifier.verify_artifact(hashed, parsed, _policy(policy))
    except Exception as e:  # sigstore.errors.VerificationError and friends
        raise BuildProvenanceError(f"Sigstore bundle does not verify: {e}") from None
    if kind == "dsse":
        if payload_type != "application/vnd.in-toto+json":
            raise BuildProvenanceError(f"build provenance payload type {payload_type!r}")
        predicate_type = _check_slsa_payload(payload, apk_sha256, policy)
    entry = parsed.log_entry._inner
    return BuildProvenance(
        kind=kind,
        issuer=issuer,
        identities=sans,
        predicate_type=predicate_type,
        log_index=int(entry.log_index),
        log_id=bytes(entry.log_id.key_id).hex(),
    )
