#!/usr/bin/env python3
"""Benchmark evalledger's Tracker against DVCLive, W&B offline and a plain JSONL append.

Every contender logs the same pre-generated ``--steps`` x ``--metrics`` values, one call
per step as a training loop would, and is timed from its first log call to the end of its
finish (``finish_experiment``, ``Live.end``, ``wandb.finish``, closing the file); setting
up is timed apart. Points per second are printed next to DVCLive's, measured in the same
run; nothing is asserted. A contender that is not installed is skipped, and says so.

    python benchmarks/bench_tracker.py [--steps 20000] [--metrics 5] [--flush-interval 1.0]
                                       [--dvclive-steps 2000] [--skip-wandb] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

# init_project runs `git init` and `dvc init`: use this interpreter's dvc, as a venv would.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

TARGET = 200_000.0
"""Points per second the Tracker aims for (at least 50x DVCLive)."""

ENV = {"DVC_NO_ANALYTICS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
Steps = list[dict[str, float]]


@dataclass
class Result:
    name: str
    seconds: float | None
    setup_s: float = 0.0
    note: str = ""
    points: int | None = None
    """Points logged, when not all of them."""


def log(text: str = "") -> None:
    print(text, flush=True)


def git_dvc_repo(root: Path) -> None:
    root.mkdir(parents=True)
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@invalid"]
    commit = ["git", *ident, "commit", "-qm", "init"]
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], commit):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True, env={**os.environ, **ENV})


def make_values(steps: int, metrics: int, seed: int = 0) -> Steps:
    rng = random.Random(seed)
    names = [f"train/m{i}" for i in range(metrics)]
    return [{n: rng.random() for n in names} for _ in range(steps)]


def bench_evalledger(work: Path, values: Steps, interval: float, fsync: bool) -> Result:
    from evalledger.execution.scaffold import init_project
    from evalledger.track.series import read_series_dir
    from evalledger.track.tracker import Tracker

    root = work / ("evalledger-fsync" if fsync else "evalledger")
    with contextlib.redirect_stdout(io.StringIO()):
        project, _ = init_project(root)
    t0 = time.perf_counter()
    tracker = Tracker(project, flush_interval=interval, fsync=fsync)
    exp_id = tracker.start_experiment({"lr": 3e-4, "bench": True})
    t1 = time.perf_counter()
    log_metrics = tracker.log_metrics
    for step, row in enumerate(values):
        log_metrics(row, step)
        if fsync and step % 1000 == 999:
            tracker.flush()  # as a 1 s interval would, in a loop of 1,000 steps/s
    loop = time.perf_counter() - t1
    tracker.finish_experiment("completed")
    total = time.perf_counter() - t1
    back = read_series_dir(project.metrics_dir / "_series" / exp_id)
    exact = all(back[k] == [(s, row[k]) for s, row in enumerate(values)] for k in values[0])
    check = "exact" if exact else "DIFFERENT"
    note = f"loop {loop:.3f}s + finish {total - loop:.3f}s; read back {check}"
    return Result("evalledger Tracker" + (" (fsync'd flush per 1k steps)" if fsync else ""), total,
                  t1 - t0, note)  # fmt: skip


def bench_dvclive(work: Path, values: Steps, steps: int | None) -> Result:
    try:
        from dvclive import Live
    except ImportError:
        return Result("DVCLive", None, note="skipped: dvclive is not installed")
    root = work / "dvclive"
    git_dvc_repo(root)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        t0 = time.perf_counter()
        live = Live("dvclive", save_dvc_exp=False)
        t1 = time.perf_counter()
        for row in values[:steps]:
            for name, value in row.items():
                live.log_metric(name, value)
            live.next_step()
        live.end()
        total = time.perf_counter() - t1
    finally:
        os.chdir(cwd)
    logged = values[:steps]
    note = f"dvclive {version('dvclive')}"
    if len(logged) < len(values):
        note += f"; first {len(logged):,} steps only (flatters it: steps get slower as it goes)"
    return Result("DVCLive", total, t1 - t0, note, len(logged) * len(values[0]))


def bench_wandb(work: Path, values: Steps) -> Result:
    try:
        import wandb
    except ImportError:
        return Result("W&B offline", None, note="skipped: wandb is not installed")
    root = work / "wandb"
    root.mkdir()
    t0 = time.perf_counter()
    run = wandb.init(project="bench-tracker", dir=str(root), mode="offline",
                     config={"lr": 3e-4})  # fmt: skip
    t1 = time.perf_counter()
    for step, row in enumerate(values):
        run.log(row, step=step)
    run.finish()
    total = time.perf_counter() - t1
    return Result("W&B offline", total, t1 - t0, f"wandb {version('wandb')}")


def bench_mlflow(work: Path, values: Steps) -> Result:
    try:
        import mlflow
    except ImportError:
        return Result("MLflow file store", None, note="skipped: mlflow is not installed")
    # MLflow 3 keeps the file store (the reference the issue measured) behind this switch.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((work / "mlruns").as_uri())
    t0 = time.perf_counter()
    mlflow.start_run()
    t1 = time.perf_counter()
    for step, row in enumerate(values):
        mlflow.log_metrics(row, step=step)
    mlflow.end_run()
    total = time.perf_counter() - t1
    return Result("MLflow file store", total, t1 - t0, f"mlflow {mlflow.__version__}")


def bench_jsonl(work: Path, values: Steps) -> Result:
    path = work / "plain.jsonl"
    t1 = time.perf_counter()
    with open(path, "a") as fh:
        for step, row in enumerate(values):
            fh.write(json.dumps({"step": step, **row}) + "\n")
    total = time.perf_counter() - t1
    return Result("plain JSONL append", total, 0.0, "buffered writes, no flush, no fsync")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--metrics", type=int, default=5)
    ap.add_argument("--flush-interval", type=float, default=1.0,
                    help="the Tracker's flush interval (default 1.0 s)")  # fmt: skip
    ap.add_argument(
        "--dvclive-steps",
        type=int,
        default=2_000,
        help="steps logged with DVCLive (default 2,000): its cost per step grows with the "
        "series, so all 20,000 take hours; its rate over the first steps flatters it",
    )
    ap.add_argument("--skip-wandb", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    os.environ.update(ENV)
    values = make_values(args.steps, args.metrics)
    points = args.steps * args.metrics
    work = Path(tempfile.mkdtemp(prefix="bench_tracker_"))
    log(f"{args.steps:,} steps x {args.metrics} metrics = {points:,} points; work dir {work}")
    runs: list[tuple[str, Callable[[], Result]]] = [
        ("evalledger", lambda: bench_evalledger(work, values, args.flush_interval, False)),
        ("evalledger fsync", lambda: bench_evalledger(work, values, args.flush_interval, True)),
        ("dvclive", lambda: bench_dvclive(work, values, args.dvclive_steps)),
        ("wandb", lambda: bench_wandb(work, values)),
        ("mlflow", lambda: bench_mlflow(work, values)),
        ("jsonl", lambda: bench_jsonl(work, values)),
    ]
    results = []
    try:
        for key, fn in runs:
            if key == "wandb" and args.skip_wandb:
                results.append(Result("W&B offline", None, note="skipped: --skip-wandb"))
                continue
            log(f"... {key}")
            results.append(fn())
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def rate_of(r: Result) -> float:
        return (r.points or points) / (r.seconds or float("nan"))

    dvclive_rate = next((rate_of(r) for r in results if r.name == "DVCLive" and r.seconds), None)
    log()
    log(f"{'contender':<46} {'seconds':>8} {'points/s':>11} {'vs DVCLive':>10} {'setup s':>8}")
    for r in results:
        if r.seconds is None:
            log(f"{r.name:<46} {r.note}")
            continue
        rate = rate_of(r)
        ratio = f"{rate / dvclive_rate:.1f}x" if dvclive_rate else "-"
        log(
            f"{r.name:<46} {r.seconds:>8.3f} {rate:>11,.0f} {ratio:>10} {r.setup_s:>8.3f}  {r.note}"
        )
    ours = results[0]
    if ours.seconds:
        rate = points / ours.seconds
        verdict = "meets" if rate >= TARGET else "misses"
        versus = f" ({rate / dvclive_rate:.0f}x DVCLive; target 50x)" if dvclive_rate else ""
        log(f"\nTracker: {rate:,.0f} points/s {verdict} the target of {TARGET:,.0f}{versus}")
    log(f"python {sys.version.split()[0]}; timings are wall clock on a shared machine")


if __name__ == "__main__":
    main()
