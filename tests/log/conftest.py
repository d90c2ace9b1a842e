"""Let ``pytest tests/log`` import ``provenance`` from this checkout when the package is
not installed (``pip install -e .`` or ``pythonpath`` in pyproject make this a no-op)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
