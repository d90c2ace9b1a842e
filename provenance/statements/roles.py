"""Which actor roles may sign which predicate: a policy kept as data.

The policy file (``policies/roles.toml`` in the repository) maps every predicate type
URI to the roles allowed to sign it, and lists the roles only the registry root may
grant through actor registration::

    version = 1

    [signers]
    "https://apk-provenance.dev/predicates/release/v1" = ["developer"]

    [actor_registration]
    root_only_roles = ["regulator"]

Loading is strict: an unknown predicate type or role, or a known predicate type left
out, is a :class:`~provenance.errors.PolicyError`, so a typo cannot silently open or
close a door. An empty list disables a predicate type.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from provenance.errors import PolicyError
from provenance.statements.predicates import PREDICATES, ROLES

__all__ = ["ENV_ROLE_POLICY", "RolePolicy", "default_role_policy_path"]

ENV_ROLE_POLICY = "APKPROV_ROLE_POLICY"


def default_role_policy_path() -> Path:
    """``$APKPROV_ROLE_POLICY``, else the repository's ``policies/roles.toml``."""
    env = os.environ.get(ENV_ROLE_POLICY)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "_policies" / "roles.toml"  # see risk/policy.py


@dataclass(frozen=True)
class RolePolicy:
    """Allowed signer roles per predicate type, and the roles only the root grants."""

    signers: Mapping[str, frozenset[str]]
    root_only_roles: frozenset[str] = frozenset({"regulator"})

    def allowed(self, predicate_type: str) -> frozenset[str]:
        """Roles that may sign ``predicate_type`` (empty when it is not accepted)."""
        return self.signers.get(predicate_type, frozenset())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "role policy") -> RolePolicy:
        """Validate a parsed policy document."""
        if data.get("version") != 1:
            raise PolicyError(f"{source}: version must be 1")
        extra = set(data) - {"version", "signers", "actor_registration"}
        if extra:
            raise PolicyError(f"{source}: unknown sections {sorted(extra)}")
        raw = data.get("signers")
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{source}: [signers] table missing")
        signers: dict[str, frozenset[str]] = {}
        for ptype, roles in raw.items():
            if ptype not in PREDICATES:
                raise PolicyError(f"{source}: unknown predicate type {ptype!r}")
            signers[ptype] = _roles(roles, f"{source}: signers of {ptype}")
        missing = set(PREDICATES) - set(signers)
        if missing:
            raise PolicyError(
                f"{source}: no signer roles for {sorted(missing)} (use [] to disable one)"
            )
        reg = data.get("actor_registration", {})
        if not isinstance(reg, Mapping) or set(reg) - {"root_only_roles"}:
            raise PolicyError(f"{source}: [actor_registration] takes only root_only_roles")
        root_only = _roles(reg.get("root_only_roles", ["regulator"]), f"{source}: root_only_roles")
        return cls(signers, root_only)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RolePolicy:
        """Read and validate a TOML policy file."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise PolicyError(f"cannot read role policy {os.fspath(path)}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(f"role policy {os.fspath(path)} is not valid TOML: {e}") from None
        return cls.from_mapping(data, os.fspath(path))

    @classmethod
    def default(cls) -> RolePolicy:
        """The policy at :func:`default_role_policy_path` (read once per path)."""
        return _load_cached(str(default_role_policy_path()))


@cache
def _load_cached(path: str) -> RolePolicy:
    return RolePolicy.load(path)


def _roles(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise PolicyError(f"{where}: must be a list of role names")
    unknown = set(value) - set(ROLES)
    if unknown:
        raise PolicyError(f"{where}: unknown roles {sorted(unknown)}; roles: {', '.join(ROLES)}")
    return frozenset(value)
