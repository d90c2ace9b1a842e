"""Where the shared test corpora live, and the apksig oracle parsed into cases.

The corpora are read in place (never copied into the repository): by default from
``../shared`` next to the repository root, or from ``$APKPROV_SHARED``.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The shared folder (corpus, data, docs)."""
    env = os.environ.get("APKPROV_SHARED")
    return Path(env) if env else (REPO.parent / "shared").resolve()


def apksig_dir() -> Path:
    """apksig's own test resources with their expected results."""
    return shared_dir() / "corpus" / "apksig"


def require(path: Path) -> Path:
    """Skip the calling test when a corpus path is absent (with the reason)."""
    if not path.exists():
        pytest.skip(f"corpus not found: {path} (set APKPROV_SHARED)")
    return path


@dataclass(frozen=True)
class Case:
    """One configuration of one APK and what the reference says about it."""

    file: str
    min_sdk: int | None
    max_sdk: int | None
    v4_file: str | None
    expected: str  # "verifies", "fails" or "error:<Exception>"
    issues: tuple[str, ...]  # alternatives: any one must be reported (fails only)
    schemes: tuple[str, ...]  # reported verified schemes (verifies only; may be empty)
    stamp: str | None  # stamp issue expected while the APK verifies
    warnings: tuple[str, ...]

    @property
    def id(self) -> str:
        cfg = []
        if self.min_sdk is not None:
            cfg.append(f"min={self.min_sdk}")
        if self.max_sdk is not None:
            cfg.append(f"max={self.max_sdk}")
        return self.file + (f"[{','.join(cfg)}]" if cfg else "")


_OTHER = re.compile(r"^(min|max)=(\d+):(verifies|fails)(?:\(([^)]*)\))?")


@cache
def apksig_cases() -> list[Case]:
    """Every primary configuration and every ``other_configs`` entry of expected.tsv."""
    path = apksig_dir() / "expected.tsv"
    if not path.exists():
        return []
    out: list[Case] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            exp = row["expected"].strip()
            if exp not in ("verifies", "fails") and not exp.startswith("error:"):
                continue
            issues: list[str] = []
            stamp = None
            warnings: list[str] = []
            for part in row["expected_issues"].split(";"):
                part = part.strip()
                if not part:
                    continue
                if part.startswith("stamp:"):
                    stamp = part[len("stamp:") :]
                elif part.startswith("warning:"):
                    warnings.append(part[len("warning:") :])
                else:
                    issues.extend(p.strip() for p in part.split("|") if p.strip())
            mn = int(row["min_sdk"]) if row["min_sdk"].strip() else None
            mx = int(row["max_sdk"]) if row["max_sdk"].strip() else None
            v4 = row["v4_file"].strip() or None
            schemes = tuple(s for s in row["schemes"].split(",") if s)
            out.append(
                Case(row["file"], mn, mx, v4, exp, tuple(issues), schemes, stamp, tuple(warnings))
            )
            for other in row["other_configs"].split(";"):
                m = _OTHER.match(other.strip())
                if not m:
                    continue
                key, value, oexp, oissues = m.groups()
                omin = int(value) if key == "min" else None
                omax = int(value) if key == "max" else None
                iss = tuple(
                    i.strip()
                    for i in (oissues or "").split("|")
                    if re.fullmatch(r"[A-Z0-9_]+", i.strip())
                )
                out.append(Case(row["file"], omin, omax, v4, oexp, iss, (), None, ()))
    return out
