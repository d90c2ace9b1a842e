"""Errors of the log's storage layer.

Storage failures are not input errors: the data the log keeps is missing, or its
pieces disagree. They subclass :class:`~provenance.errors.CheckFailed` (exit code 1)
because a verifier reading a damaged log must say "does not verify", and an operator
must stop the log rather than sign over the damage.
"""

from __future__ import annotations

from provenance.errors import CheckFailed

__all__ = ["ConflictError", "NotFoundError", "StoreError"]


class StoreError(CheckFailed):
    """The log's storage is unavailable, missing data, or inconsistent with itself."""


class NotFoundError(StoreError):
    """A tile, entry bundle or checkpoint is not in the store."""

    def __init__(self, path: str, message: str | None = None) -> None:
        super().__init__(message or f"{path} is not in the store")
        self.path = path


class ConflictError(StoreError):
    """A compare-and-swap lost: someone else changed the state first.

    The caller reloads the state and tries again; nothing was written.
    """
