"""`apkprov serve` as a separate process on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_process(directory: Path, *args: str, start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``apkprov serve --dir DIRECTORY ARGS…`` until the block ends; yield its URL.

    Waits until ``/v1/status`` answers, and stops the server with SIGTERM (so it
    integrates what was appended), killing it if it does not exit in time.
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "provenance", "serve", "--dir", str(directory)),
            *("--port", str(port), "--log-level", "warning", *args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(url + "/v1/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "apkprov serve did not start"
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
