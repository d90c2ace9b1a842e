"""What a takedown is about: an app (package), one APK (digest), or a signer's apps.

The subject decides which trace queries run and which entries count as "the
chain": for an APK, its release, shelvings and inspections; for a package, those of
every version. Values are checked here, once, so the trace queries, the evidence
bundle and the web page never carry malformed keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provenance.errors import InputError

__all__ = ["Subject"]

_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SDK = re.compile(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?")
_MAX = 255


@dataclass(frozen=True)
class Subject:
    """Exactly one of ``package``, ``sha256`` (an APK) and ``cert`` (a signer
    certificate's SHA-256); ``sdk`` adds the statements about an SDK (SDK takedowns)."""

    package: str | None = None
    sha256: str | None = None
    cert: str | None = None
    sdk: str | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.package, self.sha256, self.cert) if x]
        if len(given) != 1:
            raise InputError("give exactly one of PACKAGE, --sha256 HEX and --cert HEX")
        if self.package is not None and not (
            len(self.package) <= _MAX and _PACKAGE.fullmatch(self.package)
        ):
            raise InputError(f"{self.package[:80]!r} is not a package name")
        for name in ("sha256", "cert"):
            value = getattr(self, name)
            if value is not None:
                if not _HEX64.fullmatch(value):
                    raise InputError(f"--{name} must be 64 hex digits")
                object.__setattr__(self, name, value.lower())
        if self.sdk is not None and not (len(self.sdk) <= _MAX and _SDK.fullmatch(self.sdk)):
            raise InputError(f"{self.sdk[:80]!r} is not an SDK id (group:artifact)")

    @property
    def primary(self) -> tuple[str, str]:
        """The first trace query: ``("package" | "sha256" | "cert", value)``."""
        if self.package:
            return ("package", self.package)
        if self.sha256:
            return ("sha256", self.sha256)
        assert self.cert is not None
        return ("cert", self.cert)

    def describe(self) -> str:
        """One line for people: ``package com.example``, ``APK 4c1f...``."""
        kind, value = self.primary
        text = {"package": "package", "sha256": "APK", "cert": "signer certificate"}[kind]
        out = f"{text} {value}"
        return out + (f" (and SDK {self.sdk})" if self.sdk else "")

    def to_json(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("package", self.package),
                ("sha256", self.sha256),
                ("cert", self.cert),
                ("sdk", self.sdk),
            )
            if v is not None
        }

    @classmethod
    def from_json(cls, doc: Any, where: str = "subject") -> Subject:
        if not isinstance(doc, dict) or set(doc) - {"package", "sha256", "cert", "sdk"}:
            raise InputError(f"{where}: must be an object with package, sha256, cert, sdk")
        if not all(isinstance(v, str) for v in doc.values()):
            raise InputError(f"{where}: values must be strings")
        return cls(doc.get("package"), doc.get("sha256"), doc.get("cert"), doc.get("sdk"))
