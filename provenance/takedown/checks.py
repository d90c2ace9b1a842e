"""What the trace client checked, said plainly, with the keys and checkpoint it used.

An access provider acting on a chain has to be able to say *why* it believes it:
which log checkpoint the proofs lead to, which log key signed it (and which
witnesses cosigned), which registry root the signers' keys descend from. The CLI's
checklist and the web page both print these lines; the problems themselves come
verbatim from :class:`~provenance.trace.verify.TraceVerifier`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provenance.trace.extract import statement_refs
from provenance.trace.verify import TraceResult, Trust

__all__ = ["Check", "checks_of", "trust_json"]

# problem text -> the check it belongs to (first match; messages of provenance/trace/verify.py)
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    (
        "inclusion",
        re.compile(
            r"inclusion proof|two different contents|wrong leaf hash|malformed|"
            r"envelope cannot be encoded"
        ),
    ),
    (
        "checkpoint",
        re.compile(r"^checkpoint|carries no checkpoint|a fork$|is not consistent with size"),
    ),
    ("references", re.compile(r" cites |names entry|is cited but|\(entry \d+\)|too many ref")),
    ("completeness", re.compile(r"does not match it|left it out|paging cursor|not a statement")),
    ("signatures", re.compile(r"does not verify|unknown developer")),
]


@dataclass(frozen=True)
class Check:
    """One kind of check, whether it held, and what exactly was checked."""

    name: str
    title: str
    ok: bool
    text: str
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "text": self.text,
            "problems": list(self.problems),
        }


def _classify(problems: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name, _ in _KINDS}
    out["other"] = []
    for p in problems:
        for name, pattern in _KINDS:
            if pattern.search(p):
                out[name].append(p)
                break
        else:
            out["other"].append(p)
    return out


def trust_json(trust: Trust) -> dict[str, Any]:
    """The trust anchors used, for reports: log key, registry root keys, witnesses."""
    v = trust.log_verifier
    policy = trust.witness_policy
    return {
        "log_key": f"{v.name}+{v.key_id:08x}",
        "registry_root_keys": [k.key_id for k in trust.root_keys],
        "witness_policy": (
            {"quorum": policy.quorum, "witnesses": [w.name for w in policy.witnesses]}
            if policy
            else None
        ),
    }


def checks_of(result: TraceResult, trust: Trust) -> list[Check]:
    """The checks behind ``result``, each with its own verdict and problems."""
    by_kind = _classify(result.problems)
    cp = result.checkpoint
    anchors = trust_json(trust)
    if cp is not None:
        where = f"checkpoint of {cp.origin} at size {cp.size}, root hash {cp.root_hash.hex()}"
        text = f"{where}, signed by the log key {anchors['log_key']}"
        policy = trust.witness_policy
        if policy is not None:
            text += f"; witness quorum {policy.quorum!r} of the witness policy met"
        else:
            text += "; no witness policy given, so cosignatures were not required"
    else:
        text = "no checkpoint verified"
    n = len(result.statements)
    proved = len({s.index for s in (*result.statements, *result.actors)})
    refs = sum(len(statement_refs(s.statement)) for s in result.statements)
    roots = ", ".join(k[:16] + "…" for k in anchors["registry_root_keys"])
    statements = [
        Check(
            "checkpoint",
            "Log checkpoint",
            cp is not None and not by_kind["checkpoint"],
            text,
            tuple(by_kind["checkpoint"]),
        ),
        Check(
            "inclusion",
            "Inclusion proofs",
            not by_kind["inclusion"],
            f"{proved} entries (statements and actor registrations) proved included in that "
            "checkpoint (c2sp.org/tlog-proof@v1, RFC 6962 leaf hash of the entry as given)",
            tuple(by_kind["inclusion"]),
        ),
        Check(
            "signatures",
            "Signatures and roles",
            not by_kind["signatures"] and not by_kind["other"],
            f"{n} statements: every DSSE signature by a key registered and valid at the "
            f"statement's issued_at, the signer's role allowed by the role policy, replayed "
            f"in log order from {len(anchors['registry_root_keys'])} registry root key(s) "
            f"({roots}) and {len(result.actors)} actor registrations",
            tuple(by_kind["signatures"] + by_kind["other"]),
        ),
        Check(
            "references",
            "References",
            not by_kind["references"],
            f"{refs} log references: each leads to an earlier entry with the cited leaf hash, "
            "of the right kind (release to registration, shelving to release, ...)",
            tuple(by_kind["references"]),
        ),
        Check(
            "completeness",
            "Answers match the queries",
            not by_kind["completeness"],
            "every entry returned as matching a query matches it; a cited entry that matches "
            "but was left out of an answer is reported",
            tuple(by_kind["completeness"]),
        ),
    ]
    return statements
