"""tlog-proof@v1: an offline-verifiable proof that an entry is in a log.

A proof bundles the entry index, its inclusion proof and the log's signed (and
cosigned) checkpoint in one text file (``.tlog-proof``)::

    c2sp.org/tlog-proof@v1
    extra <base64>            (optional, unauthenticated)
    index <n>
    <base64 hash>             (zero or more, leaf sibling first)

    <checkpoint signed note, verbatim>

Verification follows the spec: the caller computes the leaf hash, the checkpoint must
carry a log signature (and enough known witness cosignatures), and the inclusion
proof must lead from the leaf to the checkpoint's root hash.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from provenance.errors import InputError, NoteError, SignatureError
from provenance.log.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    parse_checkpoint,
)
from provenance.log.merkle import (
    HASH_SIZE,
    HashReader,
    Node,
    inclusion_proof,
    verify_inclusion,
)
from provenance.log.note import MAX_NOTE_SIZE, Verifier, parse_note

__all__ = [
    "HEADER",
    "MAX_PROOF_SIZE",
    "TlogProof",
    "VerifiedTlogProof",
    "build_tlog_proof",
    "format_tlog_proof",
    "parse_tlog_proof",
    "verify_tlog_proof",
]

HEADER = "c2sp.org/tlog-proof@v1"
_MAX_EXTRA = 64 * 1024
_MAX_HASHES = 63  # the longest inclusion proof in a tree of < 2**63 leaves
MAX_PROOF_SIZE = MAX_NOTE_SIZE + 2 * _MAX_EXTRA + 4096
"""Bound on a whole proof file, checked before parsing."""
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class TlogProof:
    """A parsed proof; ``checkpoint`` is the signed note exactly as it appeared."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def encode(self) -> bytes:
        return format_tlog_proof(self)


@dataclass(frozen=True)
class VerifiedTlogProof:
    """What a verified proof establishes: the entry ``index`` is in this checkpoint."""

    index: int
    signed_checkpoint: SignedCheckpoint
    extra: bytes | None

    @property
    def checkpoint(self) -> Checkpoint:
        return self.signed_checkpoint.checkpoint


def format_tlog_proof(proof: TlogProof) -> bytes:
    """Encode a proof file."""
    if len(proof.proof) > _MAX_HASHES or any(len(h) != HASH_SIZE for h in proof.proof):
        raise InputError("inclusion proof must be at most 63 hashes of 32 bytes")
    if proof.extra is not None and len(proof.extra) > _MAX_EXTRA:
        raise InputError(f"extra data is larger than {_MAX_EXTRA} bytes")
    parse_note(proof.checkpoint)  # refuse to write a proof nobody can read
    lines = [HEADER]
    if proof.extra is not None:
        lines.append("extra " + base64.b64encode(proof.extra).decode("ascii"))
    lines.append(f"index {proof.index}")
    lines.extend(base64.b64encode(h).decode("ascii") for h in proof.proof)
    return ("\n".join(lines) + "\n\n" + proof.checkpoint).encode("utf-8")


def _b64(s: str, what: str) -> bytes:
    try:
        raw = binascii.a2b_base64(s, strict_mode=True)
    except ValueError:
        raise NoteError(f"tlog-proof {what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise NoteError(f"tlog-proof {what} is not canonical base64")
    return raw


def parse_tlog_proof(data: bytes | str) -> TlogProof:
    """Parse a proof file; :class:`NoteError` on anything malformed.

    The embedded checkpoint must be a well-formed signed note with a well-formed
    checkpoint body, but no signature is checked here.
    """
    if len(data) > MAX_PROOF_SIZE:
        raise NoteError(f"tlog-proof is larger than {MAX_PROOF_SIZE} bytes")
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("tlog-proof is not valid UTF-8") from None
    head, sep, checkpoint = data.partition("\n\n")
    if not sep:
        raise NoteError("tlog-proof has no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise NoteError(f"tlog-proof must start with {HEADER!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _b64(lines[pos][len("extra ") :], "extra data")
        if len(extra) > _MAX_EXTRA:
            raise NoteError(f"tlog-proof extra data is larger than {_MAX_EXTRA} bytes")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise NoteError("tlog-proof has no index line")
    index_text = lines[pos][len("index ") :]
    if not _DECIMAL.fullmatch(index_text) or int(index_text) >= 1 << 63:
        raise NoteError(f"tlog-proof index {index_text[:40]!r} is not a canonical decimal")
    hash_lines = lines[pos + 1 :]
    if len(hash_lines) > _MAX_HASHES:
        raise NoteError(f"tlog-proof has more than {_MAX_HASHES} proof hashes")
    hashes = []
    for i, line in enumerate(hash_lines):
        h = _b64(line, f"proof hash {i}")
        if len(h) != HASH_SIZE:
            raise NoteError(f"tlog-proof proof hash {i} is not {HASH_SIZE} bytes")
        hashes.append(h)
    note = parse_note(checkpoint)
    parse_checkpoint(note.text)
    return TlogProof(int(index_text), tuple(hashes), checkpoint, extra)


def build_tlog_proof(
    index: int,
    signed_checkpoint: bytes | str,
    reader: HashReader,
    *,
    extra: bytes | None = None,
) -> TlogProof:
    """Build the proof for entry ``index`` from the log's stored hashes.

    The inclusion proof is checked against the checkpoint's root before returning,
    so a reader out of step with the checkpoint cannot produce a bad proof.
    """
    if isinstance(signed_checkpoint, bytes | bytearray):
        try:
            signed_checkpoint = bytes(signed_checkpoint).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("checkpoint is not valid UTF-8") from None
    checkpoint = parse_checkpoint(parse_note(signed_checkpoint).text)
    hashes = inclusion_proof(index, checkpoint.size, reader)
    (leaf,) = reader.read_hashes([Node(0, index)])
    verify_inclusion(index, checkpoint.size, leaf, hashes, checkpoint.root_hash)
    return TlogProof(index, tuple(hashes), signed_checkpoint, extra)


def verify_tlog_proof(
    proof: TlogProof | bytes | str,
    leaf_hash: bytes,
    log_verifiers: Iterable[Verifier],
    witness_verifiers: Iterable[Verifier] = (),
    *,
    quorum: int = 0,
    origin: str | None = None,
) -> VerifiedTlogProof:
    """Verify a proof offline against trusted keys.

    ``leaf_hash`` is computed by the caller from the entry (RFC 6962 leaf hash). The
    checkpoint needs a log signature, every known signature must verify, and at least
    ``quorum`` distinct known witnesses must have cosigned; richer policies can be
    applied to the returned ``signed_checkpoint.cosigners``.
    """
    if not isinstance(proof, TlogProof):
        proof = parse_tlog_proof(proof)
    signed = open_checkpoint(proof.checkpoint, log_verifiers, witness_verifiers, origin=origin)
    if len(signed.cosigners) < quorum:
        raise SignatureError(
            f"checkpoint has {len(signed.cosigners)} known witness cosignatures, "
            f"policy requires {quorum}"
        )
    cp = signed.checkpoint
    verify_inclusion(proof.index, cp.size, leaf_hash, proof.proof, cp.root_hash)
    return VerifiedTlogProof(proof.index, signed, proof.extra)
