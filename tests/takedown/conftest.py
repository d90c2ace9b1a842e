"""Make the service test fixtures (tests/service/svc_world.py) importable here."""

from __future__ import annotations

import sys
from pathlib import Path

_SERVICE = str(Path(__file__).resolve().parents[1] / "service")
if _SERVICE not in sys.path:
    sys.path.insert(0, _SERVICE)
