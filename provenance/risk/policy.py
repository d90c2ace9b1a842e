"""Risk policies: rule ratings, verdict thresholds and allow-lists, read from TOML.

A policy is data (``policies/*.toml``) so that a platform can tune it, review it and
sign it like any other artefact. It is validated completely on load: an unknown key,
an unknown rule id, a rule left unrated, a severity that is not one of the five
levels, a confidence outside 0..1 -- each is a :class:`PolicyError` naming the key,
never a silent default. ``extends = "default"`` starts from the shipped default and
overrides only the tables given.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import PolicyError
from provenance.risk.findings import Severity, Verdict
from provenance.risk.rules import RULES

SCHEMA = "apkprov.risk-policy/1"
#: ``policies/default.toml`` of the repository; ``provenance/_policies`` links to that
#: folder in the source tree, and wheels carry the files themselves there.
DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "_policies" / "default.toml"
MAX_POLICY_BYTES = 1 << 20

_VERDICTS = (Verdict.COUNTERFEIT, Verdict.REPACKAGED, Verdict.HOT_SWAPPED)
_TOP = {
    "schema",
    "name",
    "description",
    "extends",
    "verdicts",
    "limits",
    "similarity",
    "allow",
    "rules",
}
_LIMITS = {"min_name_length": (1, 1_000), "max_evidence": (1, 10_000)}
_SIMILARITY = {
    "resource_threshold": (0.0, 1.0),
    "class_threshold": (0.0, 1.0),
    "min_resources": (0, 1_000_000),
    "min_classes": (0, 1_000_000),
}
_SIMILARITY_LISTS = {"ignore_class_prefixes", "ignore_resources"}
_ALLOW = {"code_loading_callers", "frameworks", "permissions", "sdks", "call_site_origins"}
_RULE_KEYS = {"severity", "confidence", "verdict", "weight", "enabled"}


@dataclass(frozen=True)
class RuleConfig:
    """How one rule is rated."""

    severity: Severity
    confidence: float
    verdict: Verdict | None
    weight: float
    enabled: bool = True


@dataclass(frozen=True)
class Limits:
    """Names shorter than ``min_name_length`` are too generic to call an impersonation;
    ``max_evidence`` caps the evidence listed per finding (summaries keep the count)."""

    min_name_length: int
    max_evidence: int


@dataclass(frozen=True)
class Similarity:
    """Content comparison with registered apps (repackaging).

    Thresholds are containment ratios of a registered app's resource files (by
    content hash) and class names in the checked APK; a side with fewer than
    ``min_resources``/``min_classes`` items is not compared. Library classes
    (descriptor prefixes) and library resources (``fnmatch`` patterns on entry
    names) are shared by unrelated apps and never count.
    """

    resource_threshold: float
    class_threshold: float
    min_resources: int
    min_classes: int
    ignore_class_prefixes: tuple[str, ...]
    ignore_resources: tuple[str, ...]


@dataclass(frozen=True)
class Allow:
    """What is never reported.

    ``code_loading_callers`` are class descriptor prefixes (store-mediated delivery,
    vetted libraries); ``call_site_origins`` the inspector's call-site origins that
    count as the app's own code; ``permissions`` are ``fnmatch`` patterns.
    """

    code_loading_callers: tuple[str, ...]
    call_site_origins: tuple[str, ...]
    frameworks: tuple[str, ...]
    permissions: tuple[str, ...]
    sdks: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A validated risk policy."""

    name: str
    description: str
    precedence: tuple[Verdict, ...]
    thresholds: dict[Verdict, float]
    limits: Limits
    similarity: Similarity
    allow: Allow
    rules: dict[str, RuleConfig]
    source: str

    def rule(self, rule_id: str) -> RuleConfig:
        """The rating of ``rule_id`` (every catalogued rule has one)."""
        return self.rules[rule_id]


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """The policy at ``path``, or the shipped default (``policies/default.toml``)."""
    p = Path(path) if path is not None else DEFAULT_POLICY
    doc = _read(p)
    if doc.get("extends") is not None:
        if doc["extends"] != "default":
            raise PolicyError(f"{p}: extends: only 'default' can be extended")
        if path is None or p.resolve() == DEFAULT_POLICY:
            raise PolicyError(f"{p}: the default policy cannot extend itself")
        doc = _overlay(_read(DEFAULT_POLICY), doc)
    return policy_from_dict(doc, str(p))


def _read(p: Path) -> dict[str, Any]:
    try:
        with p.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyError(f"{p}: no such policy file") from None
    except OSError as e:
        raise PolicyError(f"{p}: cannot read: {e.strerror}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"{p}: policy larger than {MAX_POLICY_BYTES} bytes")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{p}: not valid TOML: {e}") from None


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if k == "extends":
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _overlay(out[k], v)
        else:
            out[k] = v
    return out


def policy_from_dict(doc: dict[str, Any], source: str) -> Policy:
    """Validate a parsed policy document (see module docstring)."""
    where = source
    _only(doc, _TOP, where)
    if doc.get("schema") != SCHEMA:
        raise PolicyError(f"{where}: schema must be {SCHEMA!r}, got {doc.get('schema')!r}")
    name = _str(doc, "name", where)
    description = str(doc.get("description", ""))

    verdicts = _table(doc, "verdicts", where)
    _only(verdicts, {"precedence", "threshold"}, f"{where}: verdicts")
    prec_raw = verdicts.get("precedence")
    if not isinstance(prec_raw, list) or sorted(map(str, prec_raw)) != sorted(
        v.value for v in _VERDICTS
    ):
        raise PolicyError(
            f"{where}: verdicts.precedence must list each of "
            f"{', '.join(v.value for v in _VERDICTS)} once"
        )
    precedence = tuple(Verdict(v) for v in prec_raw)
    thr = _table(verdicts, "threshold", f"{where}: verdicts")
    _only(thr, {v.value for v in _VERDICTS}, f"{where}: verdicts.threshold")
    thresholds = {}
    for v in _VERDICTS:
        t = _number(thr, v.value, f"{where}: verdicts.threshold")
        if t <= 0:
            raise PolicyError(f"{where}: verdicts.threshold.{v.value} must be > 0")
        thresholds[v] = t

    lim = _table(doc, "limits", where)
    _only(lim, set(_LIMITS), f"{where}: limits")
    limits = Limits(**_ranged(lim, _LIMITS, f"{where}: limits"))
    st = _table(doc, "similarity", where)
    _only(st, set(_SIMILARITY) | _SIMILARITY_LISTS, f"{where}: similarity")
    nums = _ranged(st, _SIMILARITY, f"{where}: similarity")
    similarity = Similarity(
        resource_threshold=nums["resource_threshold"],
        class_threshold=nums["class_threshold"],
        min_resources=nums["min_resources"],
        min_classes=nums["min_classes"],
        ignore_class_prefixes=_str_list(st, "ignore_class_prefixes", f"{where}: similarity"),
        ignore_resources=_str_list(st, "ignore_resources", f"{where}: similarity"),
    )

    al = _table(doc, "allow", where)
    _only(al, _ALLOW, f"{where}: allow")
    allow = Allow(**{k: _str_list(al, k, f"{where}: allow") for k in sorted(_ALLOW)})

    rules_doc = _table(doc, "rules", where)
    unknown = sorted(set(rules_doc) - set(RULES))
    if unknown:
        raise PolicyError(f"{where}: unknown rule(s): {', '.join(unknown)}")
    missing = sorted(set(RULES) - set(rules_doc))
    if missing:
        raise PolicyError(f"{where}: rule(s) not rated: {', '.join(missing)}")
    rules = {rid: _rule(rules_doc, rid, f"{where}: rules.{rid}") for rid in RULES}
    return Policy(
        name, description, precedence, thresholds, limits, similarity, allow, rules, source
    )


def _ranged(
    d: dict[str, Any], spec: Mapping[str, tuple[float, float]], where: str
) -> dict[str, Any]:
    """Numbers in their ranges; a range given with int bounds takes integers only."""
    out: dict[str, Any] = {}
    for key, (lo, hi) in spec.items():
        x = _number(d, key, where)
        if not lo <= x <= hi:
            raise PolicyError(f"{where}: {key} must be in [{lo}, {hi}], got {x}")
        integral = isinstance(lo, int) and isinstance(hi, int)
        if integral and not x.is_integer():
            raise PolicyError(f"{where}: {key} must be an integer, got {x}")
        out[key] = int(x) if integral else x
    return out


def _rule(rules: dict[str, Any], rid: str, where: str) -> RuleConfig:
    r = rules[rid]
    if not isinstance(r, dict):
        raise PolicyError(f"{where}: expected a table")
    _only(r, _RULE_KEYS, where)
    sev = r.get("severity")
    levels = [s.value for s in Severity]
    if sev not in levels:
        raise PolicyError(f"{where}: severity must be one of {', '.join(levels)}, got {sev!r}")
    severity = Severity(sev)
    confidence = _number(r, "confidence", where)
    if not 0.0 <= confidence <= 1.0:
        raise PolicyError(f"{where}: confidence must be in [0, 1], got {confidence}")
    weight = _number(r, "weight", where)
    if weight < 0:
        raise PolicyError(f"{where}: weight must be >= 0, got {weight}")
    v = r.get("verdict", "none")
    if v == "none":
        verdict = None
    elif v in {x.value for x in _VERDICTS}:
        verdict = Verdict(v)
    else:
        choices = ", ".join([x.value for x in _VERDICTS] + ["none"])
        raise PolicyError(f"{where}: verdict must be one of {choices}, got {v!r}")
    enabled = r.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError(f"{where}: enabled must be true or false")
    return RuleConfig(severity, confidence, verdict, weight, enabled)


def _only(d: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise PolicyError(f"{where}: unknown key(s): {', '.join(extra)}")


def _table(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        raise PolicyError(f"{where}: missing table [{key}]")
    return v


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise PolicyError(f"{where}: {key} must be a non-empty string")
    return v


def _number(d: dict[str, Any], key: str, where: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise PolicyError(f"{where}: {key} must be a finite number, got {v!r}")
    return float(v)


def _str_list(d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise PolicyError(f"{where}: {key} must be a list of strings")
    return tuple(v)
