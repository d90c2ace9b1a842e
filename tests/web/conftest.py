"""Make the service and takedown test fixtures importable here (tests/service,
tests/takedown), without copying them."""

from __future__ import annotations

import sys
from pathlib import Path

for _name in ("service", "takedown"):
    _path = str(Path(__file__).resolve().parents[1] / _name)
    if _path not in sys.path:
        sys.path.insert(0, _path)
