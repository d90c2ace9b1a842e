"""The gate in front of the log: ``accept`` decides whether an envelope may be appended.

Checks, in order, each failure raising before anything is appended:

1. sizes, before parsing: the envelope bytes, then the decoded payload, the number of
   signatures (:class:`Limits`);
2. the DSSE envelope is well formed, its payload type is in-toto, every signature has
   a keyid and no keyid repeats;
3. every signature's key is registered and valid *now* (:class:`UnknownKeyError`) and
   the signature verifies over the PAE (:class:`EnvelopeSignatureError`) -- before the
   payload is parsed;
4. the payload is a canonical in-toto Statement v1 with a known predicate type whose
   schema, cross-field rules and derived subjects hold (:class:`StatementFormatError`);
5. the actor the predicate names as signer (``release.developer``, ...) signed it and
   has a role the policy allows for the type (:class:`RoleError`);
6. the replay rule (:class:`ReplayWindow`): ``issued_at`` within the window around
   now, and the ``statement_id`` not in ``seen`` (:class:`ReplayError`);
7. type-specific rules: actor registrations may not steal keys or escalate roles;
   a release's Sigstore build provenance verifies offline (:class:`BuildProvenanceError`).

``accept`` never mutates anything. The caller appends :attr:`AcceptedStatement.entry`
to the log and then records :attr:`AcceptedStatement.statement_id` in ``seen`` (and,
for actor registrations, calls :meth:`ActorRegistry.apply`) under the same lock, so
two concurrent submissions of one statement cannot both get in.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from provenance.statements.actors import Actor, ActorKey, ActorRegistry
from provenance.statements.dsse import Envelope
from provenance.statements.errors import (
    BuildProvenanceError,
    EnvelopeSignatureError,
    ReplayError,
    RoleError,
    StatementFormatError,
    StatementTooLarge,
)
from provenance.statements.intoto import PAYLOAD_TYPE, Statement
from provenance.statements.keys import verify_signature
from provenance.statements.predicates import (
    ACTOR_REGISTRATION,
    RELEASE,
    PredicateSpec,
    issued_at_time,
    validate_statement,
)
from provenance.statements.roles import RolePolicy
from provenance.statements.schema import format_time
from provenance.statements.sigstore import BuildProvenance, SigstorePolicy, verify_build_provenance

__all__ = ["AcceptedStatement", "Limits", "ReplayWindow", "accept", "rebuild_registry"]


@dataclass(frozen=True)
class Limits:
    """Bounds applied before parsing."""

    max_envelope: int = 512 * 1024
    max_payload: int = 384 * 1024
    max_signatures: int = 4


@dataclass(frozen=True)
class ReplayWindow:
    """The replay rule's clock bounds.

    A statement is fresh if ``now - max_age <= issued_at <= now + max_skew``. Only
    fresh statements are accepted, so ``seen`` needs to remember statement ids for
    ``max_age + max_skew`` only: anything older is refused by the clock rule alone.
    """

    max_age: timedelta = timedelta(hours=1)
    max_skew: timedelta = timedelta(minutes=5)

    def check(self, issued_at: datetime, now: datetime) -> None:
        if issued_at > now + self.max_skew:
            raise ReplayError(
                f"statement issued at {format_time(issued_at)}, in the future of "
                f"{format_time(now)} by more than {self.max_skew}"
            )
        if issued_at < now - self.max_age:
            raise ReplayError(
                f"statement issued at {format_time(issued_at)} is older than {self.max_age} "
                "(re-sign it with a fresh statement_id and issued_at)"
            )


@dataclass(frozen=True)
class AcceptedStatement:
    """A statement that passed every check, with what the log needs to append it."""

    envelope: Envelope
    statement: Statement
    spec: PredicateSpec
    signer: Actor
    signer_key: ActorKey
    cosigners: tuple[Actor, ...]
    accepted_at: datetime
    build_provenance: BuildProvenance | None = None

    @property
    def entry(self) -> bytes:
        """The canonical envelope bytes: the log entry (its leaf hash is what refs name)."""
        return self.envelope.to_json()

    @property
    def statement_id(self) -> str:
        """What the caller records in ``seen`` after appending."""
        return self.statement.statement_id

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type


def _verify_signers(
    envelope: Envelope, registry: ActorRegistry, now: datetime
) -> list[tuple[Actor, ActorKey]]:
    message = envelope.pae()
    found: list[tuple[Actor, ActorKey]] = []
    seen_ids: set[str] = set()
    for i, sig in enumerate(envelope.signatures):
        if not sig.keyid:
            raise StatementFormatError(f"signature {i} has no keyid")
        if sig.keyid in seen_ids:
            raise StatementFormatError(f"key {sig.keyid[:16]}... signed twice")
        seen_ids.add(sig.keyid)
        actor, key = registry.lookup(sig.keyid, now)
        if not verify_signature(key.public_key, message, sig.sig):
            raise EnvelopeSignatureError(
                f"signature {i} by actor {actor.id} (key {sig.keyid[:16]}...) does not verify"
            )
        found.append((actor, key))
    return found


def accept(
    envelope: bytes | Envelope,
    registry: ActorRegistry,
    seen: Container[str],
    *,
    policy: RolePolicy | None = None,
    now: datetime | None = None,
    window: ReplayWindow | None = None,
    sigstore: SigstorePolicy | None = None,
    limits: Limits | None = None,
) -> AcceptedStatement:
    """Check an envelope for the log; raise the first refusal (see the module doc).

    ``seen`` holds the statement ids already in the log within the replay window
    (a ``set`` will do). ``policy`` defaults to :meth:`RolePolicy.default`.
    """
    limits = limits or Limits()
    window = window or ReplayWindow()
    policy = policy or RolePolicy.default()
    now = now or datetime.now(UTC)

    if isinstance(envelope, bytes | bytearray | memoryview):
        if len(envelope) > limits.max_envelope:
            raise StatementTooLarge(
                f"envelope is {len(envelope)} bytes, over the {limits.max_envelope}-byte limit"
            )
        env = Envelope.from_json(
            bytes(envelope), max_size=limits.max_envelope, max_signatures=limits.max_signatures
        )
    elif isinstance(envelope, Envelope):
        env = envelope
        if len(env.signatures) > limits.max_signatures:
            raise StatementTooLarge(f"envelope has more than {limits.max_signatures} signatures")
    else:
        raise TypeError("envelope must be bytes or an Envelope")
    if len(env.payload) > limits.max_payload:
        raise StatementTooLarge(
            f"payload is {len(env.payload)} bytes, over the {limits.max_payload}-byte limit"
        )
    if env.payload_type != PAYLOAD_TYPE:
        raise StatementFormatError(
            f"payload type must be {PAYLOAD_TYPE!r}, got {env.payload_type[:80]!r}"
        )

    signers = _verify_signers(env, registry, now)

    statement = Statement.from_json(env.payload, max_size=limits.max_payload)
    if statement.to_json() != env.payload:
        raise StatementFormatError("payload is not canonical JSON (serialize it once, canonically)")
    spec = validate_statement(statement)

    named = statement.predicate[spec.signer_field]
    author = next(((a, k) for a, k in signers if a.id == named), None)
    if author is None:
        raise RoleError(
            f"the {spec.step} statement names {named!r} as {spec.signer_field}, but is signed "
            f"by {', '.join(sorted({a.id for a, _ in signers}))}"
        )
    allowed = policy.allowed(spec.type)
    if not author[0].roles & allowed:
        raise RoleError(
            f"actor {named} ({', '.join(sorted(author[0].roles))}) may not sign {spec.step} "
            f"statements; allowed roles: {', '.join(sorted(allowed)) or 'none'}"
        )

    window.check(issued_at_time(statement), now)
    if statement.statement_id in seen:
        raise ReplayError(f"statement {statement.statement_id} was already accepted")

    build = None
    if spec.type == ACTOR_REGISTRATION:
        registry.check_registration(
            Actor.from_registration(statement.predicate), author[0], policy.root_only_roles
        )
    elif spec.type == RELEASE:
        build = _check_build_provenance(statement, sigstore)

    return AcceptedStatement(
        envelope=env,
        statement=statement,
        spec=spec,
        signer=author[0],
        signer_key=author[1],
        cosigners=tuple(a for a, _ in signers if a.id != named),
        accepted_at=now,
        build_provenance=build,
    )


def _check_build_provenance(
    statement: Statement, policy: SigstorePolicy | None
) -> BuildProvenance | None:
    bundle = statement.predicate.get("build_provenance", {}).get("sigstore_bundle")
    if bundle is None:
        if policy is not None and policy.require:
            raise BuildProvenanceError("releases must carry a Sigstore build-provenance bundle")
        return None
    if policy is None:
        raise BuildProvenanceError(
            "the release carries a Sigstore bundle but no trusted root is configured to "
            "verify it (pass sigstore=SigstorePolicy(...))"
        )
    return verify_build_provenance(bundle, statement.predicate["apk"]["sha256"], policy)


def rebuild_registry(
    root_keys: Iterable[ActorKey],
    entries: Iterable[bytes],
    *,
    policy: RolePolicy | None = None,
) -> ActorRegistry:
    """Replay the log's actor-registration entries (in log order) into a registry.

    Each entry is re-checked as of its own ``issued_at`` (keys valid then, roles as
    registered by then); entries of other predicate types are skipped.
    """
    registry = ActorRegistry(root_keys)
    for entry in entries:
        env = Envelope.from_json(entry)
        statement = Statement.from_json(env.payload)
        if statement.predicate_type != ACTOR_REGISTRATION:
            continue
        at = issued_at_time(statement)
        accepted = accept(env, registry, (), policy=policy, now=at)
        registry.apply(accepted)
    return registry
