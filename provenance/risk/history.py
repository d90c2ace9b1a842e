"""History: the facts of APKs shelved (and scanned) before, for drift and repackaging.

A platform keeps the facts of every version it shelved; they are what "the
registered app" looks like in content (resource hashes, class sets) and what the
previous version could do. A history folder holds facts JSON files (``ApkFacts``
as ``apkprov inspect --json`` writes them) and/or the APKs themselves, which are
inspected on load. Files are read in name order, sizes and counts bounded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from provenance.errors import InputError
from provenance.inspect import inspect_apk
from provenance.inspect.model import ApkFacts
from provenance.metadata.jsonin import parse_json, read_bounded

MAX_FACTS_BYTES = 256 * 1024 * 1024
MAX_HISTORY_FILES = 100_000


class HistoryError(InputError):
    """A history folder or facts file cannot be used."""


def load_history(path: str | os.PathLike[str]) -> list[ApkFacts]:
    """Facts from ``*.json`` and ``*.apk`` files in a folder (or one such file)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".json", ".apk"))
    elif p.exists():
        files = [p]
    else:
        raise HistoryError(f"{p}: no such history folder or file")
    if len(files) > MAX_HISTORY_FILES:
        raise HistoryError(f"{p}: more than {MAX_HISTORY_FILES} history files")
    return [load_facts(f) for f in files]


def load_facts(path: str | os.PathLike[str]) -> ApkFacts:
    """The facts in a JSON file, or the facts of an APK (inspected now)."""
    p = Path(path)
    if p.suffix.lower() == ".apk":
        return inspect_apk(p)
    raw = read_bounded(p, MAX_FACTS_BYTES, "facts file", HistoryError)
    doc = parse_json(raw, str(p), HistoryError)
    if isinstance(doc, dict) and isinstance(doc.get("facts"), dict):
        doc = doc["facts"]  # an inspection report wrapping the facts
    if not isinstance(doc, dict):
        raise HistoryError(f"{p}: expected an ApkFacts JSON object")
    try:
        return ApkFacts.from_json(doc)
    except (ValueError, TypeError, KeyError) as e:
        raise HistoryError(f"{p}: not ApkFacts JSON: {e}") from None


def save_facts(facts: ApkFacts, path: str | os.PathLike[str]) -> None:
    """Write facts as JSON (what :func:`load_facts` reads)."""
    Path(path).write_text(json.dumps(facts.to_json(), separators=(",", ":")), encoding="utf-8")
