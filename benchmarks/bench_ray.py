#!/usr/bin/env python3
"""Benchmark ``evalledger run --executor ray``: per-task overhead and multi-worker throughput.

(a) Per-task overhead: ``--tasks`` (500) one-item chunks of an instant baseline model,
    submitted through the executor's own remote function
    (:func:`evalledger.execution.ray_executor.evaluate_chunk`, which builds the model,
    evaluates and streams its record back), against the same number of bare Ray tasks
    that return ``None``, measured in the same Ray. The difference is what evalledger
    adds per task.
(b) Throughput of a CPU-bound python model (pure-Python arithmetic, about ``--work-ms``
    per item) over one cell of ``--items`` items: ``evalledger run`` with the local
    executor (the reference: one process, the GIL), then ``--executor ray`` on a Ray
    cluster started with ``ray start --head --num-cpus=1`` and with ``--num-cpus=2``.
    Items per second, and each Ray run's speed-up over the local run and over 1 worker.

Every figure is printed next to its reference from the same run; nothing is asserted.
Needs evalledger[ray] and git; run from anywhere:

    python benchmarks/bench_ray.py [--tasks 500] [--items 400] [--work-ms 20] [--keep]
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "RAY_USAGE_STATS_ENABLED": "0",
       "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # fmt: skip

CPU_MODEL = """\
def generate(prompt, item, loops=100000):
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1000003
    return f"The answer is {item.target}."
"""


def log(text: str = "") -> None:
    print(text, flush=True)


def sh(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{tail}")
    return proc.stdout


def task_overhead(n_tasks: int) -> None:
    """(a): bare Ray tasks against evalledger's one-item chunks, in one local Ray."""
    import ray

    from evalledger.execution.cellplugins import PluginConfigs
    from evalledger.execution.ray_executor import ChunkTask, evaluate_chunk
    from evalledger.matrix import cell_from_axes
    from evalledger.plugins import load_benchmark

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)  # fmt: skip
    try:
        bench_cfg = {"loader": "arith", "n_items": n_tasks, "seed": 1, "difficulty": "easy"}
        bench = load_benchmark("arith", bench_cfg)
        items = bench.load()
        plugins = PluginConfigs(model=("solver", {"adapter": "baseline", "strategy": "solver"}),
                                benchmark=("arith", bench_cfg))  # fmt: skip
        cell = cell_from_axes({"model": "solver", "benchmark": "arith"})
        chunk = ray.remote(max_retries=0)(evaluate_chunk)

        @ray.remote
        def noop() -> None:
            return None

        ray.get([noop.remote() for _ in range(20)])  # warm the worker pool
        t0 = time.perf_counter()
        ray.get([noop.remote() for _ in range(n_tasks)])
        bare = (time.perf_counter() - t0) / n_tasks

        def submit(it: object) -> object:
            task = ChunkTask(root="", cell=cell, plugins=plugins, items=[it],  # type: ignore[list-item]
                             prompts={it.id: bench.prompt(it, None)},  # type: ignore[attr-defined]
                             decoding={}, hits=None)  # fmt: skip
            return chunk.remote(task)

        for gen in [submit(it) for it in items[:20]]:  # warm: import evalledger in workers
            for ref in gen:  # type: ignore[attr-defined]
                ray.get(ref)
        t0 = time.perf_counter()
        gens = [submit(it) for it in items]
        records = sum(len(ray.get(ref)) for gen in gens for ref in gen)  # type: ignore[attr-defined]
        ours = (time.perf_counter() - t0) / n_tasks
        assert records == n_tasks, records
    finally:
        ray.shutdown()
    log(f"(a) per-task overhead over {n_tasks} tasks on ray.init(num_cpus=2):")
    log(f"    bare Ray task (returns None)        {bare * 1000:8.2f} ms/task")
    log(
        f"    evalledger chunk of 1 item          {ours * 1000:8.2f} ms/task"
        f"   (+{(ours - bare) * 1000:.2f} ms: model built, item evaluated, record streamed)"
    )


def build_project(root: Path, items: int, loops: int) -> Path:
    root.mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "bench@example.com"],
                ["git", "config", "user.name", "bench"]):  # fmt: skip
        sh(cmd, root)
    sh([str(BIN / "evalledger"), "init", "."], root)
    (root / "models").mkdir()
    (root / "models" / "cpu_model.py").write_text(CPU_MODEL)
    (root / "params.yaml").write_text(
        textwrap.dedent(f"""\
        axes:
          model: [cpu]
          benchmark: [arith]
        models:
          cpu:
            adapter: python
            callable: cpu_model:generate
            path: {root / "models"}
            options: {{loops: {loops}}}
        benchmarks:
          arith: {{loader: arith, n_items: {items}, seed: 1, difficulty: easy}}
        """)
    )
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "init"], root)
    return root


def calibrate(work_ms: float) -> int:
    """Loops of CPU_MODEL's function that take about ``work_ms`` here."""
    namespace: dict[str, object] = {}
    exec(CPU_MODEL, namespace)
    fn = namespace["generate"]
    item = type("Item", (), {"target": 1})()
    t0 = time.perf_counter()
    fn("", item, loops=200_000)  # type: ignore[operator]
    per_loop = (time.perf_counter() - t0) / 200_000
    return max(1000, int(work_ms / 1000 / per_loop))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_run(project: Path, *args: str) -> float:
    t0 = time.perf_counter()
    sh([str(BIN / "evalledger"), "-C", str(project), "run", "--force", *args], project)
    return time.perf_counter() - t0


def throughput(work: Path, items: int, work_ms: float) -> None:
    """(b): one cell of a CPU-bound model, locally and on 1 and 2 Ray workers."""
    loops = calibrate(work_ms)
    project = build_project(work / "cpu", items, loops)
    timed_run(project)  # warm: imports, the first dvc.lock
    local = timed_run(project)
    results: dict[int, float] = {}
    for cpus in (1, 2):
        address = f"127.0.0.1:{free_port()}"
        temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
        try:
            sh([str(BIN / "ray"), "start", "--head", f"--port={address.split(':')[1]}",
                f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                "--include-dashboard=false", f"--temp-dir={temp}"], work)  # fmt: skip
            timed_run(project, "--executor", "ray", "--address", address)  # warm the workers
            results[cpus] = timed_run(project, "--executor", "ray", "--address", address)
        finally:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], env=ENV, capture_output=True,
                           check=False)  # fmt: skip
            shutil.rmtree(temp, ignore_errors=True)
    log(f"(b) one cell of {items} items of a CPU-bound python model (~{work_ms:g} ms an item):")
    log(f"    local executor (reference)          {local:7.2f} s  {items / local:8.1f} items/s")
    for cpus, seconds in results.items():
        log(
            f"    ray, {cpus} worker{'s' if cpus > 1 else ' '}                       "
            f"{seconds:7.2f} s  {items / seconds:8.1f} items/s   "
            f"{local / seconds:4.2f}x local, {results[1] / seconds:4.2f}x 1 worker"
        )
    log(
        "    (each run includes the driver's start, its connection to the cluster and the "
        "writing of outputs and dvc.lock)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500, help="tasks in (a) (default 500)")
    parser.add_argument("--items", type=int, default=400, help="items of the cell in (b)")
    parser.add_argument("--work-ms", type=float, default=20.0, help="CPU time per item in (b)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args(argv)
    log(f"bench_ray: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    task_overhead(args.tasks)
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        throughput(work, args.items, args.work_ms)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
