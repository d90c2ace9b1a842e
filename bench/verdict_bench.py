"""Verdict API under load: throughput and latency of ``GET /v1/verdict`` on 127.0.0.1.

Builds a verdict index of N synthetic apps (signed release, shelving, some
inspections and takedowns, replayed through ``VerdictIndex.ingest_many`` exactly as
from a log), starts uvicorn with ``verdict_app`` in a subprocess (``--workers``
processes), and drives it with ``wrk`` (``apt-get install wrk``; a Lua script picks a
random query per request: by SHA-256, or by package + cert + version) for a bounded
time. Without wrk it falls back to an httpx async load generator (slower: it
measures the generator as much as the server).

    .venv/bin/python bench/verdict_bench.py --apps 20000 --duration 10 --workers 2
    .venv/bin/python bench/verdict_bench.py --cache-seconds 0    # sign every response

Goal from the issue: >= 3,000 lookups/s with p99 < 20 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_app() -> Any:
    """uvicorn factory (one per worker): the index and key named by the environment."""
    from provenance.statements import open_signer
    from provenance.verdicts import VerdictIndex, verdict_app

    index = VerdictIndex.open(os.environ["VERDICT_DB"], readonly=True)
    signer = open_signer(os.environ["VERDICT_KEY"])
    return verdict_app(index, signer, cache_seconds=float(os.environ.get("VERDICT_CACHE", "5")))


def build_index(path: Path, apps: int, seed: int) -> list[str]:
    """A verdict index of ``apps`` synthetic apps; returns query paths for the load."""
    from provenance.statements import (
        INSPECTION,
        RELEASE,
        SHELVING,
        TAKEDOWN,
        KeySigner,
        LogRef,
        make_statement,
        sign_statement,
    )
    from provenance.verdicts import VerdictIndex

    rng = random.Random(seed)
    signer = KeySigner.generate()
    index = VerdictIndex.open(path)
    index.bind_origin("bench.example/log")
    ref = LogRef(0, b"\0" * 32).to_dict()
    entries: list[bytes] = []
    queries: list[str] = []

    def add(ptype: str, predicate: dict[str, Any]) -> None:
        entries.append(sign_statement(make_statement(ptype, predicate), [signer]).to_json())

    for i in range(apps):
        package = f"com.bench.app{i}"
        sha = hashlib.sha256(f"apk {i}".encode()).hexdigest()
        cert = hashlib.sha256(f"cert {i % (apps // 4 + 1)}".encode()).hexdigest()
        add(
            RELEASE,
            {
                "developer": "dev",
                "developer_registration": ref,
                "apk": {"sha256": sha},
                "package": package,
                "version_code": 1 + i % 7,
                "signer_certificates": [cert],
                "verification": {"verified": True, "schemes": ["v2"], "verifier": "bench"},
            },
        )
        add(
            SHELVING,
            {
                "platform": "store",
                "release": ref,
                "apk": {"sha256": sha},
                "package": package,
                "version_code": 1 + i % 7,
                "listing": {"id": package, "shelved_at": "2026-01-01T00:00:00Z"},
                "metadata": {
                    "app_name": f"App {i}",
                    "developer_name": "Dev",
                    "functions": [{"name": "f", "description": "d"}],
                    "permissions": [],
                    "sdks": [{"id": "com.sdk:a", "name": "A"}],
                    "privacy_policy": {"url": "https://example.org/p"},
                },
                "reviewer": {"id": "r"},
            },
        )
        if rng.random() < 0.05:
            add(
                INSPECTION,
                {
                    "inspector": "lab",
                    "target": ref,
                    "apk": {"sha256": sha},
                    "package": package,
                    "facts": {"sha256": sha, "tool": "bench"},
                    "findings": [
                        {"id": "verdict:hot_swapped", "severity": "critical", "summary": "x"}
                    ],
                    "verdict": "fail",
                },
            )
        if rng.random() < 0.01:
            add(
                TAKEDOWN,
                {
                    "authority": "reg",
                    "scope": {"kind": "version", "package": package, "apk_sha256": sha},
                    "reason": {"code": "malware", "text": "bench"},
                    "evidence": [ref],
                    "effective_at": "2026-01-01T00:00:00Z",
                },
            )
        queries.append(f"/v1/verdict?sha256={sha}")
        queries.append(f"/v1/verdict?package={package}&cert={cert}&version_code={1 + i % 7}")
        if i % 10 == 0:
            queries.append(
                f"/v1/verdict?sha256={hashlib.sha256(f'unknown {i}'.encode()).hexdigest()}"
            )
    index.ingest_many(enumerate(entries))
    index.close()
    rng.shuffle(queries)
    return queries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("uvicorn did not start")


_LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    port: int, queries_file: Path, duration: int, connections: int, threads: int
) -> dict[str, Any]:
    lua = queries_file.with_suffix(".lua")
    lua.write_text(_LUA % queries_file)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = {"tool": "wrk", "raw": out}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            result[f"p{pct}_ms"] = round(_ms(m.group(1), m.group(2)), 3)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(m.group(1)) if m else 0
    return result


async def _httpx_load(
    port: int, queries: list[str], duration: float, concurrency: int
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def worker(client: httpx.AsyncClient, seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            t = time.perf_counter()
            r = await client.get(rng.choice(queries))
            latencies.append(time.perf_counter() - t)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        start = time.monotonic()
        await asyncio.gather(*(worker(client, i) for i in range(concurrency)))
        elapsed = time.monotonic() - start
    latencies.sort()

    def pick(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    return {
        "tool": "httpx",
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "errors": errors,
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--apps", type=int, default=20000)
    p.add_argument("--duration", type=int, default=10, help="seconds of load")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--cache-seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--httpx", action="store_true", help="use the httpx generator even with wrk")
    p.add_argument(
        "--http",
        choices=("auto", "h11"),
        default="auto",
        help="uvicorn HTTP stack: auto (httptools + uvloop when installed) or pure-Python h11",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    fast = all(importlib.util.find_spec(m) for m in ("httptools", "uvloop"))
    stack = "httptools+uvloop" if fast and args.http == "auto" else "h11+asyncio"
    with tempfile.TemporaryDirectory(prefix="verdict-bench-") as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        queries = build_index(d / "verdicts.db", args.apps, args.seed)
        built = time.perf_counter() - t
        (d / "queries.txt").write_text("\n".join(queries) + "\n")
        from provenance.statements import KeySigner

        (d / "key.pem").write_bytes(KeySigner.generate().private_pem())
        os.chmod(d / "key.pem", 0o600)
        port = _free_port()
        env = dict(
            os.environ,
            VERDICT_DB=str(d / "verdicts.db"),
            VERDICT_KEY=str(d / "key.pem"),
            VERDICT_CACHE=str(args.cache_seconds),
            PYTHONPATH=str(ROOT),
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "verdict_bench:make_app",
                "--app-dir",
                str(Path(__file__).parent),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
                *(["--http", "h11", "--loop", "asyncio"] if args.http == "h11" else []),
            ],
            env=env,
        )
        try:
            _wait(port)
            time.sleep(1.0)  # let every worker come up
            if shutil.which("wrk") and not args.httpx:
                run_wrk(port, d / "queries.txt", 2, args.connections, args.threads)  # warm-up
                result = run_wrk(
                    port, d / "queries.txt", args.duration, args.connections, args.threads
                )
            else:
                result = asyncio.run(_httpx_load(port, queries, args.duration, args.connections))
        finally:
            server.terminate()
            server.wait(timeout=30)
    result.update(
        {
            "apps": args.apps,
            "index_build_s": round(built, 1),
            "workers": args.workers,
            "connections": args.connections,
            "cache_seconds": args.cache_seconds,
            "cpus": os.cpu_count(),
            "http": stack,
        }
    )
    raw = result.pop("raw", None)
    if args.json:
        print(json.dumps(result))
    else:
        if raw:
            print(raw)
        print(
            f"{result['rps']:.0f} lookups/s, p50 {result.get('p50_ms')} ms, "
            f"p99 {result.get('p99_ms')} ms, {result['errors']} errors "
            f"({args.apps} apps, {args.workers} workers, cache {args.cache_seconds}s, "
            f"{result['tool']}, {stack})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
