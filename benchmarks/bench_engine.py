#!/usr/bin/env python3
"""Benchmark the evaluation engine against an OpenAI-compatible server on 127.0.0.1.

Starts the reference server (``python -m evalledger.testing.openai_server``) in its own
process with a fixed latency, then evaluates one cell of N arithmetic items through the
``openai`` adapter at a given concurrency, and prints, measured in the same run:

- the engine's wall time against the ideal ``items x latency / concurrency``,
- the engine's client CPU time per item,
- a plain aiohttp client (no evalledger) making the same requests, as a floor.

Nothing is asserted; the targets are printed beside the figures:

    python benchmarks/bench_engine.py [--items 2000] [--concurrency 64] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_RATIO = 1.3
TARGET_CPU_MS = 2.0


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """Start the reference server process; return it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalledger.testing.openai_server", "--port", "0",
         "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def server_stats(base_url: str) -> dict[str, object]:
    """The server's /stats JSON."""
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/stats", timeout=10) as resp:
        data: dict[str, object] = json.loads(resp.read())
    return data


def peak_concurrency(stats: dict[str, object]) -> object:
    """The server's observed peak of requests in flight, whatever its key is called."""
    for key, value in stats.items():
        if "concurr" in key or "in_flight" in key:
            return value
    return "?"


def make_project(root: Path, base_url: str, items: int, concurrency: int) -> None:
    """A one-cell project: the reference server's model over N arithmetic items."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run(["evalledger", "init", "."], cwd=root, check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    (root / "params.yaml").write_text(
        "axes:\n  model: [ref]\n  benchmark: [arith]\n"
        f"models:\n  ref: {{adapter: openai, base_url: '{base_url}', model: ref,\n"
        f"        max_concurrency: {concurrency}, max_retries: 0, timeout: 60}}\n"
        f"benchmarks:\n  arith: {{loader: arith, n_items: {items}, seed: 1}}\n"
    )


def bench_engine(root: Path) -> tuple[float, float, dict[str, object]]:
    """Evaluate the cell in this process; return wall s, CPU s and its metrics."""
    from evalledger.execution.cell import evaluate_cell, prepare_cell
    from evalledger.matrix import expand
    from evalledger.project import Project

    project = Project.find(root)
    spec = project.spec()
    (cell,) = expand(spec)
    prepared = prepare_cell(project, spec, cell)

    async def main() -> dict[str, object]:
        try:
            result = await evaluate_cell(project, prepared)
        finally:
            await prepared.aclose()
        return result.metrics

    wall0, cpu0 = time.perf_counter(), time.process_time()
    metrics = asyncio.run(main())
    return time.perf_counter() - wall0, time.process_time() - cpu0, metrics


def bench_raw(base_url: str, items: int, concurrency: int) -> tuple[float, float]:
    """The same requests from a bare aiohttp client: the floor for any Python client."""
    import aiohttp

    body = json.dumps({"model": "ref", "messages": [{"role": "user", "content": "REPLY: 7"}]})

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            todo = iter(range(items))

            async def worker() -> None:
                for _ in todo:
                    async with session.post(
                        f"{base_url}/chat/completions",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as r:
                        json.loads(await r.read())

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - wall0, time.process_time() - cpu0


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    ideal = args.items * args.latency / args.concurrency
    work = Path(tempfile.mkdtemp(prefix="evalledger-bench-engine-"))
    server, base_url = start_server(args.latency)
    try:
        make_project(work, base_url, args.items, args.concurrency)
        raw_wall, raw_cpu = bench_raw(base_url, args.items, args.concurrency)
        wall, cpu, metrics = bench_engine(work)
        peak = peak_concurrency(server_stats(base_url))
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    n = args.items
    print(f"== bench_engine: {n} items, concurrency {args.concurrency}, "
          f"server latency {args.latency * 1000:.0f} ms ==")  # fmt: skip
    print(f"ideal (items x latency / concurrency): {ideal:.3f} s")
    print(f"plain aiohttp client : {raw_wall:.3f} s wall ({raw_wall / ideal:.2f}x ideal), "
          f"{raw_cpu / n * 1000:.3f} ms CPU/item")  # fmt: skip
    print(f"evalledger engine    : {wall:.3f} s wall ({wall / ideal:.2f}x ideal), "
          f"{cpu / n * 1000:.3f} ms CPU/item")  # fmt: skip
    print(f"  cell: accuracy {metrics['accuracy']}, errors {metrics['errors']}, "
          f"server peak concurrency {peak}")  # fmt: skip
    verdict_wall = "meets" if wall / ideal <= TARGET_RATIO else "BELOW"
    verdict_cpu = "meets" if cpu / n * 1000 <= TARGET_CPU_MS else "BELOW"
    print(f"target wall <= {TARGET_RATIO}x ideal: {verdict_wall}; "
          f"target CPU <= {TARGET_CPU_MS} ms/item: {verdict_cpu}")  # fmt: skip
    print(
        "anchor (not run here): inspect_ai ~16-19 s for 500 samples at 64 connections, "
        "~40x its ideal, ~35 ms CPU/sample, on this kind of machine"
    )


if __name__ == "__main__":
    main()
