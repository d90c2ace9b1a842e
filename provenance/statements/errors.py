"""Errors of the statements layer, placed under the project's two exit-code roots.

Malformed input (bad JSON, a schema violation, oversize data, an unusable signer) is an
:class:`~provenance.errors.InputError` (exit 2); a well-formed statement the log refuses
(unknown key, wrong role, replay, bad signature, failing build provenance) is a
:class:`StatementRefused`, a :class:`~provenance.errors.CheckFailed` (exit 1). Each
refusal carries a stable ``reason`` code so the HTTP service can map it without parsing
messages.
"""

from __future__ import annotations

from provenance.errors import CheckFailed, InputError, SignatureError

__all__ = [
    "BuildProvenanceError",
    "EnvelopeSignatureError",
    "ReplayError",
    "RoleError",
    "SignerUnavailable",
    "StatementFormatError",
    "StatementRefused",
    "StatementTooLarge",
    "UnknownKeyError",
]


class StatementFormatError(InputError):
    """An envelope, statement or predicate is malformed or breaks its schema."""


class StatementTooLarge(StatementFormatError):
    """Input exceeds a size or count bound; refused before it is parsed."""


class SignerUnavailable(InputError):
    """A signer URI names a scheme that is unknown or not configured here."""


class StatementRefused(CheckFailed):
    """A well-formed statement that must not enter the log."""

    reason = "refused"


class UnknownKeyError(StatementRefused):
    """A signature's key is not registered, or not valid at the time of acceptance."""

    reason = "unknown-key"


class EnvelopeSignatureError(StatementRefused, SignatureError):
    """A DSSE signature does not verify with the key its keyid names."""

    reason = "bad-signature"


class RoleError(StatementRefused):
    """The signer's role may not sign this predicate, or it is not the actor named."""

    reason = "wrong-role"


class ReplayError(StatementRefused):
    """The statement id was seen before, or its timestamp is outside the window."""

    reason = "replay"


class BuildProvenanceError(StatementRefused):
    """An attached Sigstore bundle does not verify against the configured trust root."""

    reason = "build-provenance"
