"""Signed life-cycle statements: in-toto Statement v1 in DSSE envelopes, actors, roles.

Producers build a statement for one life-cycle step and sign it with the actor's key::

    stmt = make_statement(RELEASE, release_predicate(apk, developer="acme", ...))
    envelope = sign_statement(stmt, [open_signer("file:keys/acme.pem")])
    body = envelope.to_json()

The log (and the HTTP service in front of it) decides with :func:`accept`::

    accepted = accept(body, registry, seen, sigstore=sigstore_policy)
    log.append(accepted.entry); seen.add(accepted.statement_id)

See ``docs/statements.md`` for the predicate schemas, the role policy and the replay rule.
"""

from __future__ import annotations

from provenance.statements.accept import (
    AcceptedStatement,
    Limits,
    ReplayWindow,
    accept,
    rebuild_registry,
)
from provenance.statements.actors import ROOT_ACTOR_ID, Actor, ActorKey, ActorRegistry
from provenance.statements.canonical import canonical_json
from provenance.statements.dsse import Envelope, Signature, pae, sign_envelope, verify_envelope
from provenance.statements.errors import (
    BuildProvenanceError,
    EnvelopeSignatureError,
    ReplayError,
    RoleError,
    SignerUnavailable,
    StatementFormatError,
    StatementRefused,
    StatementTooLarge,
    UnknownKeyError,
)
from provenance.statements.intoto import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Statement,
    Subject,
    sign_statement,
)
from provenance.statements.keys import key_id, load_public_key
from provenance.statements.logref import LogRef
from provenance.statements.predicates import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    PREDICATES,
    RELEASE,
    RESTORE,
    ROLES,
    SDK_REGISTRATION,
    SHELVING,
    TAKEDOWN,
    make_statement,
    release_predicate,
    validate_statement,
)
from provenance.statements.roles import RolePolicy
from provenance.statements.signers import (
    KeySigner,
    Signer,
    open_signer,
    register_signer_scheme,
)
from provenance.statements.sigstore import (
    BuildIdentity,
    BuildProvenance,
    SigstorePolicy,
    verify_build_provenance,
)

__all__ = [
    "ACTOR_REGISTRATION",
    "DEVELOPER_REGISTRATION",
    "INSPECTION",
    "PAYLOAD_TYPE",
    "PREDICATES",
    "RELEASE",
    "RESTORE",
    "ROLES",
    "ROOT_ACTOR_ID",
    "SDK_REGISTRATION",
    "SHELVING",
    "STATEMENT_TYPE",
    "TAKEDOWN",
    "AcceptedStatement",
    "Actor",
    "ActorKey",
    "ActorRegistry",
    "BuildIdentity",
    "BuildProvenance",
    "BuildProvenanceError",
    "Envelope",
    "EnvelopeSignatureError",
    "KeySigner",
    "Limits",
    "LogRef",
    "ReplayError",
    "ReplayWindow",
    "RoleError",
    "RolePolicy",
    "Signature",
    "Signer",
    "SignerUnavailable",
    "SigstorePolicy",
    "Statement",
    "StatementFormatError",
    "StatementRefused",
    "StatementTooLarge",
    "Subject",
    "UnknownKeyError",
    "accept",
    "canonical_json",
    "key_id",
    "load_public_key",
    "make_statement",
    "open_signer",
    "pae",
    "rebuild_registry",
    "register_signer_scheme",
    "release_predicate",
    "sign_envelope",
    "sign_statement",
    "validate_statement",
    "verify_build_provenance",
    "verify_envelope",
]
