"""One thread pool for the hashing that verification does.

``hashlib`` releases the GIL for inputs over 2 KiB, so hashing independent chunks
of a memory-mapped APK on threads uses every core without copying the file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

WORKERS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The shared pool (created on first use, lives for the process).

    ``concurrent.futures`` is imported here, not at module load: small APKs never
    need the pool, and start-up time matters for one-shot ``apkprov verify``.
    """
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="apkhash")
    return _pool
