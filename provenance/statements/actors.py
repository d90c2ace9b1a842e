"""The registry of actors, their roles and their public keys with validity windows.

Actors are platforms, developers, SDK providers, inspectors, access providers and
regulators. The registry is anchored in *root keys* configured out of band (the
``registry-root`` actor, role ``registry_root``); every other actor enters through an
actor-registration statement signed by the root or a regulator and accepted into the
log like any other statement, so the registry is itself auditable and can be rebuilt
from the log (:func:`provenance.statements.accept.rebuild_registry`).

A registration replaces the actor's record: keys it no longer lists stop being valid
at the registration's ``issued_at`` but are kept, so statements signed earlier can
still be attributed. A key belongs to one actor only, forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from provenance.statements.errors import RoleError, StatementFormatError, UnknownKeyError
from provenance.statements.keys import (
    PublicKey,
    key_algorithm,
    key_id,
    load_public_key,
    public_key_b64,
)
from provenance.statements.predicates import ACTOR_REGISTRATION, ROLES
from provenance.statements.schema import format_time, parse_time

if TYPE_CHECKING:
    from provenance.statements.accept import AcceptedStatement

__all__ = ["ROOT_ACTOR_ID", "Actor", "ActorKey", "ActorRegistry"]

ROOT_ACTOR_ID = "registry-root"


@dataclass(frozen=True)
class ActorKey:
    """A public key and the half-open interval ``[valid_from, valid_until)`` it signs in."""

    public_key: PublicKey
    valid_from: datetime
    valid_until: datetime | None = None
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id(self.public_key))
        if self.valid_from.tzinfo is None or (
            self.valid_until is not None and self.valid_until.tzinfo is None
        ):
            raise ValueError("key validity times must be timezone-aware")

    def valid_at(self, when: datetime) -> bool:
        """Whether the key may sign at ``when``."""
        return self.valid_from <= when and (self.valid_until is None or when < self.valid_until)

    def to_dict(self) -> dict[str, Any]:
        """The key entry of an actor-registration predicate."""
        out = {
            "keyid": self.key_id,
            "algorithm": key_algorithm(self.public_key),
            "public_key": public_key_b64(self.public_key),
            "valid_from": format_time(self.valid_from),
        }
        if self.valid_until is not None:
            out["valid_until"] = format_time(self.valid_until)
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ActorKey:
        """From a (validated) actor-registration key entry."""
        until = obj.get("valid_until")
        return cls(
            load_public_key(obj["public_key"]),
            parse_time(obj["valid_from"]),
            parse_time(until) if until is not None else None,
        )


@dataclass(frozen=True)
class Actor:
    """An actor: id, display name, roles and keys (current and retired)."""

    id: str
    name: str
    roles: frozenset[str]
    keys: tuple[ActorKey, ...] = ()
    contact: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise StatementFormatError(f"actor {self.id}: unknown roles {sorted(unknown)}")

    def registration(self, registrar: str) -> dict[str, Any]:
        """The actor-registration predicate for this record (for :func:`make_statement`)."""
        actor: dict[str, Any] = {"id": self.id, "name": self.name, "roles": sorted(self.roles)}
        if self.contact:
            actor["contact"] = dict(self.contact)
        return {
            "registrar": registrar,
            "actor": actor,
            "keys": [k.to_dict() for k in self.keys],
        }

    @classmethod
    def from_registration(cls, predicate: Mapping[str, Any]) -> Actor:
        """The record an actor-registration predicate (already validated) describes."""
        a = predicate["actor"]
        return cls(
            a["id"],
            a["name"],
            frozenset(a["roles"]),
            tuple(ActorKey.from_dict(k) for k in predicate["keys"]),
            a.get("contact"),
        )


class ActorRegistry:
    """Actors by id and keys by key ID; the root keys come from configuration.

    Not synchronized: the log applies registrations under the lock it appends with.
    """

    def __init__(self, root_keys: Iterable[ActorKey]) -> None:
        roots = tuple(root_keys)
        if not roots:
            raise ValueError("an actor registry needs at least one root key")
        self._actors: dict[str, Actor] = {}
        self._owner: dict[str, str] = {}  # key ID -> actor ID, never reassigned
        self._put(Actor(ROOT_ACTOR_ID, "actor registry root", frozenset({"registry_root"}), roots))

    def __contains__(self, actor_id: object) -> bool:
        return actor_id in self._actors

    def __iter__(self) -> Iterator[Actor]:
        return iter(self._actors.values())

    def __len__(self) -> int:
        return len(self._actors)

    def actor(self, actor_id: str) -> Actor | None:
        """The actor's current record, if registered."""
        return self._actors.get(actor_id)

    def lookup(self, kid: str, when: datetime) -> tuple[Actor, ActorKey]:
        """The actor owning key ``kid`` and that key, if it is valid at ``when``."""
        owner = self._owner.get(kid)
        if owner is None:
            raise UnknownKeyError(f"key {kid[:64]} is not registered to any actor")
        actor = self._actors[owner]
        key = next(k for k in actor.keys if k.key_id == kid)
        if not key.valid_at(when):
            until = format_time(key.valid_until) if key.valid_until else "open"
            raise UnknownKeyError(
                f"key {kid[:16]}... of actor {actor.id} is not valid at {format_time(when)} "
                f"(valid {format_time(key.valid_from)} .. {until})"
            )
        return actor, key

    def check_registration(
        self, new: Actor, registrar: Actor, root_only_roles: frozenset[str]
    ) -> None:
        """Refuse a registration that would steal a key or escalate a role."""
        if new.id == ROOT_ACTOR_ID or new.id == registrar.id:
            raise RoleError(f"actor {registrar.id} cannot register {new.id}")
        if "registry_root" not in registrar.roles:
            granted = new.roles & root_only_roles
            if granted:
                raise RoleError(
                    f"only the registry root may grant {sorted(granted)} (registrar {registrar.id})"
                )
            current = self._actors.get(new.id)
            if current is not None and current.roles & root_only_roles:
                raise RoleError(f"only the registry root may re-register {new.id}")
        for k in new.keys:
            owner = self._owner.get(k.key_id)
            if owner is not None and owner != new.id:
                raise RoleError(f"key {k.key_id[:16]}... already belongs to actor {owner}")

    def register(self, new: Actor, effective: datetime) -> Actor:
        """Install ``new`` as the actor's record from ``effective`` on; returns the record.

        Keys the previous record had and ``new`` lacks are retired at ``effective``.
        Callers normally go through :func:`~provenance.statements.accept.accept` and
        :meth:`apply`; direct use is for bootstrapping and tests.
        """
        for k in new.keys:
            owner = self._owner.get(k.key_id)
            if owner is not None and owner != new.id:
                raise RoleError(f"key {k.key_id[:16]}... already belongs to actor {owner}")
        listed = {k.key_id for k in new.keys}
        old = self._actors.get(new.id)
        retired = []
        if old is not None:
            for k in old.keys:
                if k.key_id not in listed:
                    until = effective if k.valid_until is None else min(k.valid_until, effective)
                    retired.append(replace(k, valid_until=until))
        record = replace(new, keys=(*new.keys, *retired))
        self._put(record)
        return record

    def apply(self, accepted: AcceptedStatement) -> Actor:
        """Apply an accepted actor-registration statement (after it is in the log)."""
        if accepted.predicate_type != ACTOR_REGISTRATION:
            raise StatementFormatError("only actor-registration statements change the registry")
        predicate = accepted.statement.predicate
        return self.register(Actor.from_registration(predicate), parse_time(predicate["issued_at"]))

    def _put(self, actor: Actor) -> None:
        self._actors[actor.id] = actor
        for k in actor.keys:
            self._owner[k.key_id] = actor.id
