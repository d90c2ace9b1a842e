"""The story's servers: all on 127.0.0.1, on free ports, and all stopped at the end.

* :class:`AppServer` -- an ASGI app (the log service) under uvicorn in a thread,
  on a socket bound before the thread starts (no port race);
* :class:`WitnessProcess` -- ``apkprov witness serve`` as a separate process, as a
  witness operator runs it;
* :class:`StaticServer` -- a plain static file server for the TUF feed, which any
  web server or CDN could serve; restartable on the same port.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from provenance.errors import ProvenanceError

__all__ = ["AppServer", "StaticServer", "WitnessProcess", "free_port"]

_HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


class AppServer:
    """Serve an ASGI app with uvicorn in a daemon thread until :meth:`stop`."""

    def __init__(self, app: Any, *, timeout: float = 10.0) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((_HOST, 0))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._sock.close()
                raise ProvenanceError("the log service did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the story's process dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop() still ends it


class WitnessProcess:
    """``apkprov witness serve --dir DIR`` on a free port, its output in ``log_file``."""

    def __init__(self, directory: Path, log_file: Path, *, timeout: float = 20.0) -> None:
        self.directory = directory
        self.port = free_port()
        self.command = [
            sys.executable,
            "-m",
            "provenance",
            "witness",
            "serve",
            "--dir",
            str(directory),
            "--host",
            _HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self._out = open(log_file, "wb")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            self.command,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            # its own session: a Ctrl-C reaches the story, which stops the witness after
            # the log's last cosigned checkpoint; and it dies with the story regardless
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._timeout = timeout

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    def wait_ready(self) -> None:
        """Block until the witness answers HTTP (any status) or give up."""
        deadline = time.monotonic() + self._timeout
        while True:
            if self.process.poll() is not None:
                raise ProvenanceError(
                    f"the witness in {self.directory} exited with code {self.process.returncode}"
                )
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "/", timeout=1.0)
                return
            if time.monotonic() > deadline:
                raise ProvenanceError(f"the witness in {self.directory} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._out.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticServer:
    """A static HTTP server for one directory, in a thread; stop and start it again
    on the same port (the terminal remembers the feed's URL)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port if port is not None else free_port()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> StaticServer:
        handler = functools.partial(_Quiet, directory=str(self.root))
        self._httpd = http.server.ThreadingHTTPServer((_HOST, self.port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
