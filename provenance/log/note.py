"""Signed notes (c2sp.org/signed-note) and their keys, byte for byte as Go's sumdb/note.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> base64(key ID || signature)``. Keys are identified by (name, key ID),
where the key ID is ``SHA-256(name || "\\n" || type || public key)[:4]``. Verifier keys
("vkeys") are ``name+hex(key ID)+base64(type || public key)``; Go's private keys are
``PRIVATE+KEY+name+hex(key ID)+base64(type || seed)``.

Signature types here: Ed25519 (0x01), timestamped Ed25519 cosignatures
(``cosignature/v1``, 0x04, c2sp.org/tlog-cosignature) and, verify-only, ECDSA P-256
(0x02, as Rekor v1 signs checkpoints).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from provenance.errors import NoteError, SignatureError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ECDSA",
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "CosignatureV1Signer",
    "CosignatureV1Verifier",
    "ECDSAVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "InvalidSignatureError",
    "Note",
    "Signature",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "check_note_text",
    "cosignature_timestamp",
    "format_vkey",
    "generate_key",
    "is_valid_key_name",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
]

ALG_ED25519 = 0x01
ALG_ECDSA = 0x02
ALG_COSIGNATURE_V1 = 0x04

MAX_NOTE_SIZE = 1 << 20
"""Default bound on a whole signed note, checked before anything else."""
MAX_SIGNATURES = 100
"""Default bound on signature lines (Go's limit; the spec asks for at least 16)."""

_MAX_TIMESTAMP = (1 << 63) - 1
_SIG_PREFIX = "\u2014 "  # em dash, space
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnverifiedNoteError(SignatureError):
    """The note is well formed but no known key signed it."""

    def __init__(self, note: Note, message: str = "note has no signature from a known key") -> None:
        super().__init__(message)
        self.note = note


class InvalidSignatureError(SignatureError):
    """A known key's signature on the note does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


# ----------------------------------------------------------------------- helpers


def _b64decode(s: str) -> bytes | None:
    """Standard base64 with padding, as strict as Go's ``StdEncoding``; None if bad."""
    try:
        raw = binascii.a2b_base64(s, strict_mode=True)
    except ValueError:
        return None
    if len(s) != (len(raw) + 2) // 3 * 4:  # rejects excess padding Python tolerates
        return None
    return raw


def _b64encode(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode spaces, no ``+``; also no control characters or lone
    surrogates, which no note can carry."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _CONTROL.search(name) is None
        and _SURROGATE.search(name) is None
    )


def key_id(name: str, key: bytes) -> int:
    """``SHA-256(name || 0x0A || key)[:4]`` as a big-endian uint32; ``key`` starts with
    the signature type byte."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def check_note_text(text: str, what: str = "note text") -> None:
    """Raise :class:`NoteError` unless ``text`` is non-empty text ending in a newline,
    without ASCII control characters other than newline."""
    if not text.endswith("\n"):
        raise NoteError(f"{what} must end with a newline")
    m = _CONTROL.search(text)
    if m is not None:
        raise NoteError(f"{what} contains control character {m.group()!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid Unicode (lone surrogate)") from None


# ---------------------------------------------------------------- keys and protocols


class Verifier(Protocol):
    """Checks signatures of one key, identified by (name, key ID) (Go's ``note.Verifier``)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is valid for ``message``."""
        ...


class Signer(Protocol):
    """Signs with one key (Go's ``note.Signer``)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes:
        """Signature bytes (without the key ID) over ``message``."""
        ...


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not is_valid_key_name(name):
        raise NoteError(f"invalid key name {name!r}")
    return name


def _ed25519_public(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise NoteError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise NoteError("invalid Ed25519 public key") from None


def _ed25519_private(seed: bytes) -> Ed25519PrivateKey:
    if len(seed) != 32:
        raise NoteError(f"an Ed25519 private key seed is 32 bytes, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def format_vkey(name: str, alg: int, public_key: bytes) -> str:
    """``name+hex(key ID)+base64(alg || public key)`` with the standard key ID."""
    material = bytes([alg]) + public_key
    return f"{_check_name(name)}+{key_id(name, material):08x}+{_b64encode(material)}"


class _Ed25519Key:
    """Shared part of Ed25519-based verifiers (plain and cosignature)."""

    alg = ALG_ED25519

    def __init__(self, name: str, public_key: bytes) -> None:
        self._name = _check_name(name)
        self._key = _ed25519_public(public_key)
        self.public_key = bytes(public_key)
        self._key_id = key_id(name, bytes([self.alg]) + self.public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def vkey(self) -> str:
        """The verifier key string."""
        return format_vkey(self._name, self.alg, self.public_key)

    def _check(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class Ed25519Verifier(_Ed25519Key):
    """Ed25519 note signatures (type 0x01) over the note text."""

    def verify(self, message: bytes, signature: bytes) -> bool:
        return len(signature) == 64 and self._check(message, signature)


def _cosigned_message(timestamp: int, message: bytes) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + message


class CosignatureV1Verifier(_Ed25519Key):
    """tlog-cosignature Ed25519 (type 0x04): ``u64 timestamp || Ed25519 signature`` over
    ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint text."""

    alg = ALG_COSIGNATURE_V1

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        return self._check(_cosigned_message(timestamp, message), signature[8:])


class ECDSAVerifier:
    """ECDSA P-256/SHA-256 note signatures (type 0x02), verify only, as Rekor v1 and
    the transparency-dev witness use; the key ID is ``SHA-256(DER SPKI)[:4]``."""

    alg = ALG_ECDSA

    def __init__(self, name: str, spki_der: bytes) -> None:
        self._name = _check_name(name)
        try:
            key = serialization.load_der_public_key(spki_der)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise NoteError(f"cannot load ECDSA public key: {e}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise NoteError("ECDSA note keys must be NIST P-256")
        self._key = key
        self._key_id = int.from_bytes(hashlib.sha256(spki_der).digest()[:4], "big")

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


class _Ed25519SigningKey:
    """Shared part of the Ed25519-based signers: name, key ID, key strings."""

    alg = ALG_ED25519

    def __init__(self, name: str, seed: bytes) -> None:
        self._name = _check_name(name)
        self._key = _ed25519_private(seed)
        self.public_key = _raw_public(self._key)
        self._key_id = key_id(name, bytes([self.alg]) + self.public_key)

    @classmethod
    def generate(cls, name: str) -> Self:
        """A signer with a fresh random key."""
        return cls(name, _raw_seed(Ed25519PrivateKey.generate()))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def vkey(self) -> str:
        """The matching verifier key string."""
        return format_vkey(self._name, self.alg, self.public_key)

    @property
    def skey(self) -> str:
        """Go's private key string; a secret."""
        material = bytes([self.alg]) + _raw_seed(self._key)
        return f"PRIVATE+KEY+{self._name}+{self._key_id:08x}+{_b64encode(material)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"  # never the secret


class Ed25519Signer(_Ed25519SigningKey):
    """Ed25519 note signer (type 0x01); deterministic, so re-signing is byte-exact."""

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._name, self.public_key)


class CosignatureV1Signer(_Ed25519SigningKey):
    """Witness cosigner (type 0x04): signs ``cosignature/v1`` messages with a timestamp.

    ``clock`` returns the POSIX time to sign with (``time.time`` by default).
    """

    alg = ALG_COSIGNATURE_V1

    def __init__(self, name: str, seed: bytes, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, seed)
        self._clock = clock

    def sign(self, message: bytes) -> bytes:
        timestamp = int(self._clock())
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise NoteError(f"cosignature timestamp {timestamp} is out of range")
        signature = self._key.sign(_cosigned_message(timestamp, message))
        return timestamp.to_bytes(8, "big") + signature

    def verifier(self) -> CosignatureV1Verifier:
        return CosignatureV1Verifier(self._name, self.public_key)


_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


def _split_key(text: str, parts: int, what: str) -> list[str]:
    if not isinstance(text, str) or len(text) > 4096:
        raise NoteError(f"malformed {what}")
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise NoteError(f"malformed {what}: expected {parts} '+'-separated fields")
    return fields


def parse_verifier_key(vkey: str) -> Ed25519Verifier | CosignatureV1Verifier:
    """Parse a vkey of type 0x01 (Ed25519) or 0x04 (cosignature/v1)."""
    name, hash16, key64 = _split_key(vkey, 3, "verifier key")
    key = _b64decode(key64)
    if not is_valid_key_name(name) or not _HEX8.fullmatch(hash16) or not key:
        raise NoteError(f"malformed verifier key {vkey!r}")
    if int(hash16, 16) != key_id(name, key):
        raise NoteError(f"verifier key {vkey!r} has the wrong key ID")
    alg, public = key[0], key[1:]
    if alg == ALG_ED25519:
        return Ed25519Verifier(name, public)
    if alg == ALG_COSIGNATURE_V1:
        return CosignatureV1Verifier(name, public)
    raise NoteError(f"verifier key {vkey!r} has unknown signature type 0x{alg:02x}")


def parse_signer_key(skey: str) -> Ed25519Signer | CosignatureV1Signer:
    """Parse Go's ``PRIVATE+KEY+name+id+base64(type || seed)`` (type 0x01 or 0x04)."""
    priv, word, name, hash16, key64 = _split_key(skey, 5, "signer key")
    key = _b64decode(key64)
    if (
        priv != "PRIVATE"
        or word != "KEY"
        or not is_valid_key_name(name)
        or not _HEX8.fullmatch(hash16)
        or not key
    ):
        raise NoteError("malformed signer key")
    alg, seed = key[0], key[1:]
    signer: Ed25519Signer | CosignatureV1Signer
    if alg == ALG_ED25519:
        signer = Ed25519Signer(name, seed)
    elif alg == ALG_COSIGNATURE_V1:
        signer = CosignatureV1Signer(name, seed)
    else:
        raise NoteError(f"signer key has unknown signature type 0x{alg:02x}")
    if signer.key_id != int(hash16, 16):
        raise NoteError("signer key has the wrong key ID")
    return signer


def generate_key(name: str, alg: int = ALG_ED25519) -> tuple[str, str]:
    """A fresh ``(skey, vkey)`` pair, as Go's ``note.GenerateKey``."""
    signer: Ed25519Signer | CosignatureV1Signer
    if alg == ALG_ED25519:
        signer = Ed25519Signer.generate(name)
    elif alg == ALG_COSIGNATURE_V1:
        signer = CosignatureV1Signer.generate(name)
    else:
        raise NoteError(f"cannot generate keys of signature type 0x{alg:02x}")
    return signer.skey, signer.vkey


# ------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the ID."""

    name: str
    key_id: int
    signature: bytes

    @property
    def base64(self) -> str:
        return _b64encode(self.key_id.to_bytes(4, "big") + self.signature)

    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {self.base64}\n"


@dataclass(frozen=True)
class Note:
    """Note text (ending in a newline) with its verified and unverified signatures."""

    text: str
    signatures: tuple[Signature, ...] = ()
    unverified: tuple[Signature, ...] = ()


def cosignature_timestamp(signature: Signature) -> int:
    """The POSIX timestamp inside a cosignature/v1 signature."""
    if len(signature.signature) != 8 + 64:
        raise NoteError(f"{signature.name} signature is not a cosignature/v1 signature")
    return int.from_bytes(signature.signature[:8], "big")


def sign_note(note: Note | str, signers: Sequence[Signer]) -> bytes:
    """Encode a signed note: existing signatures first (minus keys being re-signed),
    then one new signature per signer, as Go's ``note.Sign``."""
    if isinstance(note, str):
        note = Note(note)
    check_note_text(note.text)
    message = note.text.encode("utf-8")
    new: list[Signature] = []
    replacing = set()
    for s in signers:
        name = _check_name(s.name)
        kid = s.key_id
        if not 0 <= kid <= 0xFFFFFFFF:
            raise NoteError(f"key ID of {name} is not a uint32")
        replacing.add((name, kid))
        new.append(Signature(name, kid, s.sign(message)))
    lines = [note.text, "\n"]
    for sig in (*note.signatures, *note.unverified):
        _check_name(sig.name)
        if (sig.name, sig.key_id) not in replacing:
            lines.append(sig.line())
    lines.extend(sig.line() for sig in new)
    if len(lines) == 2:
        raise NoteError("a signed note needs at least one signature")
    return "".join(lines).encode("utf-8")


def parse_note(
    msg: bytes | str,
    *,
    max_size: int = MAX_NOTE_SIZE,
    max_signatures: int = MAX_SIGNATURES,
) -> Note:
    """Split a signed note into text and signatures without checking any of them.

    Every signature comes back in ``unverified`` (identical lines once). The text must
    still be ignored until :func:`open_note` has verified a trusted signature.
    """
    if isinstance(msg, str):
        if len(msg) > max_size:
            raise NoteError(f"note is larger than {max_size} bytes")
        try:
            msg = msg.encode("utf-8")
        except UnicodeEncodeError:
            raise NoteError("note is not valid Unicode (lone surrogate)") from None
    if len(msg) > max_size:
        raise NoteError(f"note is larger than {max_size} bytes")
    try:
        whole = bytes(msg).decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None
    m = _CONTROL.search(whole)
    if m is not None:
        raise NoteError(f"note contains control character {m.group()!r}")

    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = whole[: split + 1], whole[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("note has no signature lines, or they do not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > max_signatures:
        raise NoteError(f"note has more than {max_signatures} signatures")

    sigs: list[Signature] = []
    seen: set[str] = set()
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:80]!r}")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(b64)
        if not is_valid_key_name(name) or not b64 or raw is None or len(raw) < 5:
            raise NoteError(f"malformed signature line {line[:80]!r}")
        if line not in seen:  # identical lines count once, as in Go
            seen.add(line)
            sigs.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, (), tuple(sigs))


def open_note(
    msg: bytes | str,
    verifiers: Iterable[Verifier],
    *,
    max_size: int = MAX_NOTE_SIZE,
    max_signatures: int = MAX_SIGNATURES,
) -> Note:
    """Parse a signed note and check it against known keys (Go's ``note.Open``).

    Signatures from unknown (name, key ID) pairs are kept as unverified. A known key's
    signature that fails raises :class:`InvalidSignatureError` (the whole note is
    rejected); a note no known key signed raises :class:`UnverifiedNoteError`.
    Malformed input raises :class:`NoteError`.
    """
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        k = (v.name, v.key_id)
        if known.setdefault(k, v) is not v:
            raise NoteError(f"ambiguous verifiers for key {v.name}+{v.key_id:08x}")

    parsed = parse_note(msg, max_size=max_size, max_signatures=max_signatures)
    message = parsed.text.encode("utf-8")
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for sig in parsed.unverified:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
            continue
        if not verifier.verify(message, sig.signature):
            raise InvalidSignatureError(sig.name, sig.key_id)
        if all((s.name, s.key_id) != (sig.name, sig.key_id) for s in verified):
            verified.append(sig)

    note = Note(parsed.text, tuple(verified), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError(note)
    return note
