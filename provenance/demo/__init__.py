"""The whole story as one command: every party of apk-provenance, end to end.

``python -m provenance.demo`` (what ``scripts/demo`` runs) plays it in a new data
folder and prints what each party sees; :func:`run_story` is the same as a library
call, returning a :class:`StoryResult` that tests assert on. See README.md,
"The whole story".
"""

from __future__ import annotations

from provenance.demo.story import Check, StoryResult, run_story

__all__ = ["Check", "StoryResult", "run_story"]
