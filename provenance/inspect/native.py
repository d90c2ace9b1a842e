"""Native libraries: ``lib/<abi>/<name>.so``, the ABIs they cover, and their digests.

Only files directly inside ``lib/<abi>/`` are considered, as the package manager
extracts them (``NativeLibraryHelper``); anything deeper is data, not a library the
platform would load by name.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NATIVE_LIB", "native_lib_path"]

NATIVE_LIB: Final = re.compile(r"lib/([^/]+)/([^/]+\.so)")


def native_lib_path(entry_name: str) -> tuple[str, str] | None:
    """``(abi, file name)`` for a native library entry, else ``None``."""
    m = NATIVE_LIB.fullmatch(entry_name)
    return (m.group(1), m.group(2)) if m else None
