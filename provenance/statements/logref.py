"""References from a statement to earlier log entries.

A :class:`LogRef` names an entry by its index and its RFC 6962 leaf hash
(``SHA-256(0x00 || entry bytes)``), so the reference is checkable: a trace verifier
fetches the entry, hashes it and compares, then proves inclusion against a checkpoint.
The index alone could be re-pointed by a lying log; the hash alone would need a search.
``log`` names another log by its checkpoint origin; absent, the reference is to the
same log the statement is appended to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provenance.log.merkle import leaf_hash
from provenance.statements.canonical import MAX_SAFE_INT
from provenance.statements.errors import StatementFormatError

__all__ = ["LogRef"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_ORIGIN = re.compile(r"[\x21-\x7e]{1,256}")


@dataclass(frozen=True)
class LogRef:
    """An earlier log entry: index, leaf hash and optionally the log's origin."""

    index: int
    leaf_hash: bytes
    log: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise StatementFormatError("log reference index must be an integer")
        if not 0 <= self.index <= MAX_SAFE_INT:
            raise StatementFormatError(f"log reference index {self.index} is out of range")
        if not isinstance(self.leaf_hash, bytes) or len(self.leaf_hash) != 32:
            raise StatementFormatError("log reference leaf hash must be 32 bytes")
        if self.log is not None and not (isinstance(self.log, str) and _ORIGIN.fullmatch(self.log)):
            raise StatementFormatError("log reference origin must be printable ASCII")

    @classmethod
    def to_entry(cls, index: int, entry: bytes, log: str | None = None) -> LogRef:
        """The reference to ``entry`` (the logged bytes) at ``index``."""
        return cls(index, leaf_hash(entry), log)

    def matches(self, entry: bytes) -> bool:
        """Whether ``entry`` is the entry this reference names."""
        return leaf_hash(entry) == self.leaf_hash

    def to_dict(self) -> dict[str, Any]:
        """``{"index": n, "leaf_hash": hex[, "log": origin]}``."""
        out: dict[str, Any] = {"index": self.index, "leaf_hash": self.leaf_hash.hex()}
        if self.log is not None:
            out["log"] = self.log
        return out

    @classmethod
    def from_dict(cls, obj: object, path: str = "log reference") -> LogRef:
        """Parse the JSON form strictly."""
        if not isinstance(obj, dict):
            raise StatementFormatError(f"{path}: must be an object")
        extra = set(obj) - {"index", "leaf_hash", "log"}
        if extra or "index" not in obj or "leaf_hash" not in obj:
            raise StatementFormatError(
                f"{path}: needs index and leaf_hash (and optional log), got {sorted(obj)}"
            )
        h = obj["leaf_hash"]
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise StatementFormatError(f"{path}.leaf_hash: must be 64 lowercase hex digits")
        try:
            return cls(obj["index"], bytes.fromhex(h), obj.get("log"))
        except StatementFormatError as e:
            raise StatementFormatError(f"{path}: {e}") from None
