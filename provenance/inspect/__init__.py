"""Shelf inspection: the facts of an APK, fast and exact, with no Android tools.

:func:`inspect_apk` reads an APK once and returns :class:`ApkFacts` (see
:mod:`provenance.inspect.model` for the schema and ``docs/inspection.md``).
"""

from __future__ import annotations

from provenance.inspect.inspector import inspect_apk, inspect_apkfile
from provenance.inspect.model import FACTS_VERSION, ApkFacts

__all__ = ["FACTS_VERSION", "ApkFacts", "inspect_apk", "inspect_apkfile"]
