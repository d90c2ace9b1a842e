"""tlog-policy (c2sp.org/tlog-policy): which logs and witnesses to trust, and the quorum.

A policy file lists logs (``log <vkey> [<url>]``), witnesses (``witness <name> <vkey>
[<url>]``), groups (``group <name> all|any|<k> <member>...``) and exactly one
``quorum <name>`` line (``none`` for no witnesses). Parsing follows the spec to the
letter: only tab, newline, printable ASCII and high-bit octets; whitespace is spaces
and tabs; names are opaque octet strings in one namespace; a group or the quorum may
only name what earlier lines defined; no duplicate keys; ``1 <= k <= n``.

A checkpoint satisfies the policy when one of the listed logs (whose key name is the
origin) signed it and the verified witness cosignatures satisfy the quorum.
:func:`cosign_with_policy` is the log's side: gather cosignatures until they do.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from provenance.errors import InputError, NoteError, PolicyError, SignatureError
from provenance.log.checkpoint import SignedCheckpoint, open_checkpoint
from provenance.log.note import (
    ALG_COSIGNATURE_V1,
    CosignatureV1Verifier,
    Ed25519Verifier,
    Verifier,
    parse_note,
    parse_verifier_key,
)
from provenance.log.proof import TlogProof, VerifiedTlogProof, verify_tlog_proof
from provenance.log.witness import (
    CosignResult,
    ProofProvider,
    WitnessEndpoint,
    gather_cosignatures,
    gather_cosignatures_sync,
)

__all__ = [
    "MAX_POLICY_SIZE",
    "NONE",
    "Policy",
    "PolicyCosigner",
    "PolicyGroup",
    "PolicyLog",
    "PolicyWitness",
    "QuorumError",
    "cosign_with_policy",
    "cosign_with_policy_sync",
    "load_policy",
    "parse_policy",
    "verify_tlog_proof_with_policy",
]

logger = logging.getLogger(__name__)

NONE = "none"
"""The predefined quorum name that requires no cosignature."""
MAX_POLICY_SIZE = 1 << 20
_MAX_ENTRIES = 1024  # per kind; the spec recommends supporting at least 32
_MAX_MEMBERS = 1024
_BAD_OCTET = re.compile(rb"[^\t\n\x20-\x7e\x80-\xff]")
_WHITESPACE = re.compile(rb"[ \t]+")
_THRESHOLD = re.compile(rb"[0-9]{1,9}")


class QuorumError(PolicyError, SignatureError):
    """A checkpoint's cosignatures do not satisfy the policy's quorum (the check ran
    and failed, so exit code 1)."""

    exit_code = 1


@dataclass(frozen=True)
class PolicyLog:
    """A trusted log; its key name is the log's origin."""

    vkey: str
    verifier: Ed25519Verifier | CosignatureV1Verifier = field(compare=False, repr=False)
    url: str | None = None

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class PolicyWitness:
    """A named witness with its cosignature/v1 key and optional submission prefix."""

    name: str
    vkey: str
    verifier: CosignatureV1Verifier = field(compare=False, repr=False)
    url: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """(key name, key ID) as in ``SignedCheckpoint.cosigners``."""
        return (self.verifier.name, self.verifier.key_id)


@dataclass(frozen=True)
class PolicyGroup:
    """Witnessed when at least ``threshold`` of ``members`` (witnesses or groups) are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed policy; evaluate it with :meth:`quorum_met` or :meth:`verify_checkpoint`."""

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str

    def log_verifiers(self, origin: str | None = None) -> list[Verifier]:
        """Keys of the listed logs (only those for ``origin`` if given)."""
        return [g.verifier for g in self.logs if origin is None or g.origin == origin]

    def witness_verifiers(self) -> list[Verifier]:
        return [w.verifier for w in self.witnesses]

    def _evaluate(self, cosigners: Collection[tuple[str, int]]) -> dict[str, tuple[int, bool]]:
        """name -> (members witnessed, witnessed?), in definition order (linear time)."""
        have = set(cosigners)
        state: dict[str, tuple[int, bool]] = {NONE: (0, True)}
        for w in self.witnesses:
            state[w.name] = (int(w.key in have), w.key in have)
        for g in self.groups:
            count = sum(state[m][1] for m in g.members)
            state[g.name] = (count, count >= g.threshold)
        return state

    def quorum_met(self, cosigners: Collection[tuple[str, int]]) -> bool:
        """Whether these verified cosigners ((name, key ID) pairs) satisfy the quorum."""
        return self._evaluate(cosigners)[self.quorum][1]

    def check_quorum(self, cosigners: Collection[tuple[str, int]]) -> None:
        """Raise :class:`QuorumError` saying which group falls short, unless met."""
        state = self._evaluate(cosigners)
        if state[self.quorum][1]:
            return
        groups = {g.name: g for g in self.groups}
        short = []
        for name in self._unmet(self.quorum, groups, state):
            g = groups.get(name)
            if g is None:
                short.append(f"witness {name!r} did not cosign")
            else:
                short.append(
                    f"group {name!r} has {state[name][0]} of the {g.threshold} "
                    f"(of {len(g.members)}) it needs"
                )
        raise QuorumError(f"quorum {self.quorum!r} not met: " + "; ".join(short))

    def _unmet(
        self, name: str, groups: Mapping[str, PolicyGroup], state: Mapping[str, tuple[int, bool]]
    ) -> list[str]:
        """The unmet node and, below it, its unmet member groups (breadth first)."""
        out: list[str] = []
        queue, seen = [name], set()
        while queue and len(out) < 16:
            n = queue.pop(0)
            if n in seen or state[n][1]:
                continue
            seen.add(n)
            out.append(n)
            if n in groups:
                queue.extend(m for m in groups[n].members if m in groups)
        return out

    def verify_checkpoint(self, msg: bytes | str, origin: str | None = None) -> SignedCheckpoint:
        """Verify a signed checkpoint against the policy: signed by a listed log whose
        key name is the checkpoint's origin, every known signature valid, quorum met.

        Raises :class:`NoteError` (malformed), :class:`SignatureError` (signature) or
        :class:`QuorumError`.
        """
        if origin is None:
            origin = parse_note(msg).text.split("\n", 1)[0]
        logs = self.log_verifiers(origin)
        if not logs:
            raise SignatureError(f"the policy lists no log with origin {origin[:200]!r}")
        signed = open_checkpoint(msg, logs, self.witness_verifiers(), origin=origin)
        self.check_quorum(signed.cosigners)
        return signed

    def endpoints(self) -> list[WitnessEndpoint]:
        """The witnesses that have a URL, named as in the policy."""
        return [WitnessEndpoint(w.name, w.url, w.verifier) for w in self.witnesses if w.url]


# -------------------------------------------------------------------- parsing


def _fail(lineno: int, message: str) -> PolicyError:
    return PolicyError(f"policy line {lineno}: {message}")


def _text(token: bytes) -> str:
    """Names and URLs are opaque octets; surrogateescape keeps distinct bytes distinct."""
    return token.decode("utf-8", "surrogateescape")


def _vkey(token: bytes, lineno: int) -> Ed25519Verifier | CosignatureV1Verifier:
    try:
        return parse_verifier_key(_text(token))
    except NoteError as e:
        raise _fail(lineno, str(e)) from None


def parse_policy(data: bytes | str) -> Policy:
    """Parse a policy file; :class:`PolicyError` names the line and the problem."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > MAX_POLICY_SIZE:
        raise PolicyError(f"policy is larger than {MAX_POLICY_SIZE} bytes")
    bad = _BAD_OCTET.search(data)
    if bad is not None:
        lineno = data.count(b"\n", 0, bad.start()) + 1
        raise _fail(lineno, f"control character 0x{bad.group()[0]:02x} is not allowed")

    logs: list[PolicyLog] = []
    witnesses: list[PolicyWitness] = []
    groups: list[PolicyGroup] = []
    names: set[str] = set()  # witnesses and groups share one namespace
    keys: dict[tuple[str, int], str] = {}  # (key name, key ID) -> what uses it
    log_keys: set[bytes] = set()
    witness_keys: set[bytes] = set()
    quorum: str | None = None

    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline terminates the last line
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip(b" \t")
        if not line or line.startswith(b"#"):
            continue
        keyword, *args = _WHITESPACE.split(line)

        if keyword == b"log":
            if not 1 <= len(args) <= 2:
                raise _fail(lineno, "expected 'log <vkey> [<url>]'")
            verifier = _vkey(args[0], lineno)
            if verifier.public_key in log_keys:
                raise _fail(lineno, "duplicate log key")
            log_keys.add(verifier.public_key)
            _claim(keys, verifier, "log", lineno)
            url = _text(args[1]) if len(args) == 2 else None
            logs.append(PolicyLog(_text(args[0]), verifier, url))
            if len(logs) > _MAX_ENTRIES:
                raise _fail(lineno, f"more than {_MAX_ENTRIES} logs")

        elif keyword == b"witness":
            if not 2 <= len(args) <= 3:
                raise _fail(lineno, "expected 'witness <name> <vkey> [<url>]'")
            name = _new_name(args[0], names, lineno)
            verifier = _vkey(args[1], lineno)
            if not isinstance(verifier, CosignatureV1Verifier):
                raise _fail(
                    lineno,
                    f"witness {name!r} key must be a cosignature key "
                    f"(type 0x{ALG_COSIGNATURE_V1:02x}), not a plain Ed25519 note key",
                )
            if verifier.public_key in witness_keys:
                raise _fail(lineno, f"witness {name!r} duplicates another witness's key")
            witness_keys.add(verifier.public_key)
            _claim(keys, verifier, f"witness {name!r}", lineno)
            url = _text(args[2]) if len(args) == 3 else None
            witnesses.append(PolicyWitness(name, _text(args[1]), verifier, url))
            names.add(name)
            if len(witnesses) > _MAX_ENTRIES:
                raise _fail(lineno, f"more than {_MAX_ENTRIES} witnesses")

        elif keyword == b"group":
            if len(args) < 3:
                raise _fail(lineno, "expected 'group <name> all|any|<k> <member>...'")
            name = _new_name(args[0], names, lineno)
            members = [_text(m) for m in args[2:]]
            if len(members) > _MAX_MEMBERS:
                raise _fail(lineno, f"group {name!r} has more than {_MAX_MEMBERS} members")
            seen: set[str] = set()
            for m in members:
                if m == NONE:
                    raise _fail(lineno, f"'{NONE}' cannot be a group member")
                if m not in names:
                    raise _fail(lineno, f"group member {m!r} is not defined on an earlier line")
                if m in seen:
                    raise _fail(lineno, f"group member {m!r} is listed twice")
                seen.add(m)
            n = len(members)
            if args[1] == b"all":
                k = n
            elif args[1] == b"any":
                k = 1
            elif _THRESHOLD.fullmatch(args[1]):
                k = int(args[1])
                if not 1 <= k <= n:
                    raise _fail(lineno, f"group {name!r} threshold {k} is not in 1..{n}")
            else:
                raise _fail(lineno, "group threshold must be 'all', 'any' or a decimal number")
            groups.append(PolicyGroup(name, k, tuple(members)))
            names.add(name)
            if len(groups) > _MAX_ENTRIES:
                raise _fail(lineno, f"more than {_MAX_ENTRIES} groups")

        elif keyword == b"quorum":
            if len(args) != 1:
                raise _fail(lineno, "expected 'quorum <name>'")
            if quorum is not None:
                raise _fail(lineno, "a policy has exactly one quorum line")
            q = _text(args[0])
            if q != NONE and q not in names:
                raise _fail(lineno, f"quorum {q!r} is not defined on an earlier line")
            quorum = q

        else:
            raise _fail(lineno, f"unknown keyword {_text(keyword)[:40]!r}")

    if quorum is None:
        raise PolicyError("policy has no quorum line")
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum)


def _new_name(token: bytes, names: set[str], lineno: int) -> str:
    name = _text(token)
    if name == NONE:
        raise _fail(lineno, f"'{NONE}' is predefined and cannot be redefined")
    if name in names:
        raise _fail(lineno, f"name {name!r} is already defined")
    return name


def _claim(keys: dict[tuple[str, int], str], v: Verifier, what: str, lineno: int) -> None:
    """Each (key name, key ID) may identify one key, or signatures would be ambiguous."""
    prior = keys.setdefault((v.name, v.key_id), what)
    if prior != what:
        raise _fail(lineno, f"{what} has the same key name and ID as {prior}")


def load_policy(path: Path | str) -> Policy:
    """Read and parse a policy file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_POLICY_SIZE + 1)
    except OSError as e:
        raise InputError(f"cannot read policy {path}: {e.strerror}") from None
    try:
        return parse_policy(data)
    except PolicyError as e:
        raise PolicyError(f"{path}: {e}") from None


# ------------------------------------------------------------------- using it


async def cosign_with_policy(
    checkpoint: bytes | str,
    policy: Policy,
    known_sizes: Mapping[str, int],
    proof_provider: ProofProvider,
    *,
    timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
) -> CosignResult:
    """Gather cosignatures from the policy's witnesses that have URLs until the
    quorum is met (the remaining requests are cancelled) or ``timeout`` passes.

    ``result.complete`` says whether the quorum was met; ``result.note`` is the
    checkpoint with the cosignatures gathered; ``result.sizes`` (keyed by policy
    witness name) are the witness sizes to remember for the next round.
    """
    return await gather_cosignatures(
        checkpoint,
        policy.endpoints(),
        known_sizes,
        proof_provider,
        timeout=timeout,
        enough=policy.quorum_met,
        client=client,
    )


def cosign_with_policy_sync(
    checkpoint: bytes | str,
    policy: Policy,
    known_sizes: Mapping[str, int],
    proof_provider: ProofProvider,
    *,
    timeout: float = 10.0,
) -> CosignResult:
    """:func:`cosign_with_policy` for synchronous callers (a sequencer thread)."""
    return gather_cosignatures_sync(
        checkpoint,
        policy.endpoints(),
        known_sizes,
        proof_provider,
        timeout=timeout,
        enough=policy.quorum_met,
    )


class PolicyCosigner:
    """The sequencer's witness hook (``Log.open(cosigner=...)``, ``Sequencer(cosigner=
    ...)``): cosign each new checkpoint with the policy's witnesses until the quorum
    is met or ``timeout`` passes.

    Witness sizes are remembered between rounds (start from ``sizes``, or learn them
    from one ``409`` each). If the quorum is not met, the checkpoint is published with
    what was gathered and a warning is logged, unless ``require_quorum``: then
    :class:`QuorumError` aborts the integration and the sequencer retries later.
    """

    def __init__(
        self,
        policy: Policy,
        proofs: ProofProvider,
        *,
        timeout: float = 10.0,
        require_quorum: bool = False,
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        self.policy = policy
        self.proofs = proofs
        self.timeout = timeout
        self.require_quorum = require_quorum
        self.sizes: dict[str, int] = dict(sizes or {})
        self.last: CosignResult | None = None
        self._lock = threading.Lock()

    def __call__(self, note: bytes) -> bytes:
        with self._lock:  # one round at a time: sizes must follow the tree
            result = cosign_with_policy_sync(
                note, self.policy, self.sizes, self.proofs, timeout=self.timeout
            )
            self.sizes.update(result.sizes)
            self.last = result
        if not result.complete:
            errors = "; ".join(f"{n}: {e}" for n, e in sorted(result.errors.items()))
            message = f"witness quorum {self.policy.quorum!r} not met ({errors or 'no witnesses'})"
            if self.require_quorum:
                raise QuorumError(message)
            logger.warning("%s; publishing the checkpoint without it", message)
        return result.note


def verify_tlog_proof_with_policy(
    proof: TlogProof | bytes | str,
    leaf_hash: bytes,
    policy: Policy,
    *,
    origin: str,
) -> VerifiedTlogProof:
    """:func:`~provenance.log.proof.verify_tlog_proof` with the policy's logs,
    witnesses and quorum instead of a k-of-n count."""
    if not policy.log_verifiers(origin):
        raise SignatureError(f"the policy lists no log with origin {origin[:200]!r}")
    result = verify_tlog_proof(
        proof,
        leaf_hash,
        policy.log_verifiers(origin),
        policy.witness_verifiers(),
        origin=origin,
    )
    policy.check_quorum(result.signed_checkpoint.cosigners)
    return result
