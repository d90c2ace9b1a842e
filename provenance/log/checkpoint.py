"""tlog-checkpoint: the signed tree head of a C2SP log.

The note text is the origin line, the tree size in decimal, the base64 root hash, and
optional extension lines, each ending in a newline. Parsing is strict (no leading
zeroes, canonical base64, no empty lines) so that one tree head has one spelling.
:func:`open_checkpoint` also insists that the *log* signed it: a checkpoint that only
witnesses signed is not a checkpoint of that log.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provenance.errors import NoteError, SignatureError
from provenance.log.merkle import HASH_SIZE, MAX_TREE_SIZE
from provenance.log.note import (
    MAX_NOTE_SIZE,
    Note,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    check_note_text,
    open_note,
    sign_note,
)

__all__ = [
    "Checkpoint",
    "SignedCheckpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_EXTENSIONS = 64


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash, and opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.extensions) > _MAX_EXTENSIONS:
            raise NoteError(f"checkpoint has more than {_MAX_EXTENSIONS} extension lines")
        named = [("origin", self.origin), *(("extension line", e) for e in self.extensions)]
        for what, line in named:
            if not isinstance(line, str) or not line or "\n" in line:
                raise NoteError(f"checkpoint {what} must be one non-empty line")
            check_note_text(line + "\n", f"checkpoint {what}")
        if not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.size!r} is out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash must be {HASH_SIZE} bytes")

    def text(self) -> str:
        """The note text, ready to sign."""
        return format_checkpoint(self)


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """Encode a checkpoint body (the note text, ending in a newline)."""
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    ]
    text = "\n".join(lines) + "\n"
    check_note_text(text, "checkpoint")
    return text


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse a checkpoint body strictly; :class:`NoteError` says what is wrong."""
    if len(text) > MAX_NOTE_SIZE:
        raise NoteError(f"checkpoint is larger than {MAX_NOTE_SIZE} bytes")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("checkpoint is not valid UTF-8") from None
    check_note_text(text, "checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint has {len(lines)} lines, needs origin, size and root hash")
    if any(not line for line in lines):
        raise NoteError("checkpoint has an empty line")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size) or int(size) > MAX_TREE_SIZE:
        raise NoteError(f"checkpoint tree size {size[:40]!r} is not a canonical decimal")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except ValueError:
        raise NoteError(f"checkpoint root hash {root[:60]!r} is not base64") from None
    if len(root_hash) != HASH_SIZE or base64.b64encode(root_hash).decode() != root:
        raise NoteError(f"checkpoint root hash {root[:60]!r} is not 32 bytes in base64")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """The signed note for a checkpoint."""
    return sign_note(checkpoint.text(), signers)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the cosignatures that verified."""

    checkpoint: Checkpoint
    note: Note
    log_signatures: tuple[Signature, ...]
    cosignatures: tuple[Signature, ...]

    @property
    def cosigners(self) -> frozenset[tuple[str, int]]:
        """(name, key ID) of each witness whose cosignature verified."""
        return frozenset((s.name, s.key_id) for s in self.cosignatures)


def open_checkpoint(
    msg: bytes | str,
    log_verifiers: Iterable[Verifier],
    witness_verifiers: Iterable[Verifier] = (),
    *,
    origin: str | None = None,
) -> SignedCheckpoint:
    """Verify a signed checkpoint: at least one log key must have signed it, every
    known signature must verify, and (if given) the origin line must match.

    Raises :class:`NoteError` if malformed and :class:`SignatureError` if not signed
    as required.
    """
    logs = list(log_verifiers)
    witnesses = list(witness_verifiers)
    note = open_note(msg, [*logs, *witnesses])
    log_ids = {(v.name, v.key_id) for v in logs}
    log_sigs = tuple(s for s in note.signatures if (s.name, s.key_id) in log_ids)
    if not log_sigs:
        raise UnverifiedNoteError(note, "checkpoint has no signature from a known log key")
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise SignatureError(
            f"checkpoint is from origin {checkpoint.origin!r}, expected {origin!r}"
        )
    cosigs = tuple(s for s in note.signatures if (s.name, s.key_id) not in log_ids)
    return SignedCheckpoint(checkpoint, note, log_sigs, cosigs)
