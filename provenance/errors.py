"""One error hierarchy for the whole toolkit.

Every failure a user can cause or act on is a subclass of :class:`ProvenanceError`.
The CLI maps :class:`InputError` (bad usage, unreadable or malformed input) to exit
code 2 and :class:`CheckFailed` (the check ran and said no) to exit code 1, so callers
never need to catch anything else for expected failures.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """Root of every expected failure raised by this package."""

    exit_code = 2


class InputError(ProvenanceError):
    """The input cannot be used: missing file, wrong format, malformed beyond reading."""

    exit_code = 2


class ApkFormatError(InputError):
    """The APK (ZIP container, signing block, manifest) is malformed.

    Mirrors apksig's ``ApkFormatException``: raised where the reference gives up
    on the file instead of reporting a verification issue.
    """


class AxmlError(ApkFormatError):
    """Android binary XML (AXML) is malformed or exceeds a limit."""


class DerError(InputError):
    """DER/BER data is malformed or exceeds a limit."""


class KeystoreError(InputError):
    """A key or keystore cannot be loaded (never carries the password)."""


class CheckFailed(ProvenanceError):
    """A check ran and its answer is no (not verified, proof invalid, risk found)."""

    exit_code = 1


class SignatureError(CheckFailed):
    """A signature does not verify."""


class NoteError(InputError):
    """A signed note or checkpoint is malformed."""


class ProofError(CheckFailed):
    """A Merkle inclusion or consistency proof does not verify."""


class PolicyError(InputError):
    """A policy file is malformed or cannot be satisfied."""
