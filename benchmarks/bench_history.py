#!/usr/bin/env python3
"""Benchmark evalledger's history commands and paired bootstrap against DVC and SciPy.

A synthetic ledger (default: 100 models x 100 benchmarks = 10,000 cells of 200 items,
50 commits) is written with ``git fast-import`` in a temporary directory, in exactly the
layout ``evalledger run --commit`` leaves: params.yaml, the one-stage dvc.yaml, a
``dvc init`` folder, per-cell metrics and per-item scores, one execution manifest per
commit. Commit 1 evaluates every cell; each later commit re-evaluates two models on all
benchmarks with new seeds, so ``HEAD~1..HEAD`` changes 200 cells and two models' params.

(a) leaderboard: ``evalledger leaderboard`` with a cold cache (``.evalledger/cache/``
    deleted) and a warm one, against ``dvc metrics show``.
(b) diff: ``evalledger diff HEAD~1 HEAD``, cold and warm, against
    ``dvc metrics diff HEAD~1`` (DVC compares HEAD~1 with the workspace, which is HEAD
    in the clean synthetic repo).
(c) paired bootstrap: ``evalledger.analysis.resampling.paired_bootstrap`` against
    ``scipy.stats.bootstrap(..., paired=True, vectorized=True, method="percentile")`` on
    the same 10,000 paired items, 10,000 resamples, binary and continuous scores.

Every result is printed next to its reference, measured in the same run; nothing is
asserted. Needs git, dvc and evalledger (looked up next to this Python first, then on
PATH), numpy, scipy and PyYAML. Run from anywhere:

    python benchmarks/bench_history.py [--models 100] [--benchmarks 100] [--items 200]
                                       [--commits 50] [--repeats 3] [--skip-dvc] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

LEDGER_TARGET = 10.0
"""The speed-up evalledger aims for against ``dvc metrics show`` / ``dvc metrics diff``."""
BOOT_TARGET = 5.0
"""The speed-up evalledger's paired bootstrap aims for against ``scipy.stats.bootstrap``."""

CATEGORIES = ("addition", "subtraction", "multiplication", "division", "two_step")
CSV_HEADER = (
    "id,category,correct,score,partial,formatted,latency_ms,prompt_tokens,completion_tokens,error\n"
)
# The one matrix stage of evalledger's dvc.yaml (as in the demo at the repository root).
DVC_YAML = """\
stages:
  eval:
    matrix:
      model: ${axes.model}
      benchmark: ${axes.benchmark}
    cmd: evalledger cell model=${item.model} benchmark=${item.benchmark}
    params:
      - models.${item.model}
      - benchmarks.${item.benchmark}
    outs:
      - predictions/${item.model}/${item.benchmark}.jsonl
      - metrics/${item.model}/${item.benchmark}.scores.csv:
          cache: false
    metrics:
      - metrics/${item.model}/${item.benchmark}.json:
          cache: false
"""
GITIGNORE = "# evalledger local state: run lock, item checkpoints, caches\n/.evalledger/\n"
T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
"""When the first synthetic execution starts; each later one starts an hour after."""

IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
# DVC's analytics report is no part of what we measure (and needs the network).
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", **IDENTITY}


def log(text: str = "") -> None:
    """Print a progress line at once (the script runs for minutes)."""
    print(text, flush=True)


def tool(name: str) -> str | None:
    """The executable ``name`` next to this Python (a venv's bin), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def sh(cmd: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; raise with the output's tail on failure."""
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode} in {cwd}:\n{tail}")
    return proc


# --------------------------------------------------------------------------------------
# The synthetic ledger
# --------------------------------------------------------------------------------------


class Scores:
    """Per-item results of every cell, as (models, benchmarks, items) arrays."""

    def __init__(self, n_models: int, n_benches: int, items: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.shape = (n_models, n_benches, items)
        self.ability = rng.uniform(0.45, 0.92, n_models)
        self.bench_offset = rng.normal(0.0, 0.08, n_benches)
        self.item_offset = rng.normal(0.0, 0.15, (n_benches, items))
        self.prompt_tokens = rng.integers(10, 60, (n_benches, items))
        self.category = np.arange(items) % len(CATEGORIES)
        self.onehot = np.eye(len(CATEGORIES), dtype=np.int64)[self.category]
        self.correct = np.zeros(self.shape, dtype=np.int8)
        self.partial = np.zeros(self.shape, dtype=np.int8)
        self.formatted = np.zeros(self.shape, dtype=np.int8)
        self.latency = np.zeros(self.shape)
        self.completion = np.zeros(self.shape, dtype=np.int64)
        self.evaluate(list(range(n_models)), rng)

    def evaluate(self, models: list[int], rng: np.random.Generator) -> None:
        """(Re-)draw every item of every benchmark for ``models``."""
        _, n_benches, items = self.shape
        size = (len(models), n_benches, items)
        p = (
            self.ability[models, None, None]
            + self.bench_offset[None, :, None]
            + self.item_offset[None, :, :]
        )
        p = np.clip(p, 0.02, 0.98)
        formatted = rng.random(size) < 0.98
        correct = (rng.random(size) < p) & formatted
        partial = correct | ((rng.random(size) < 0.25) & formatted)
        self.correct[models] = correct
        self.partial[models] = partial
        self.formatted[models] = formatted
        self.latency[models] = np.round(rng.lognormal(math.log(400.0), 0.4, size), 3)
        self.completion[models] = rng.integers(3, 30, size)


def cell_files(scores: Scores, prefixes: list[list[str]], m: int, b: int) -> tuple[str, str]:
    """The metrics JSON and the scores CSV of cell (model ``m``, benchmark ``b``)."""
    correct = scores.correct[m, b]
    partial = scores.partial[m, b]
    formatted = scores.formatted[m, b]
    latency = scores.latency[m, b]
    prompt = scores.prompt_tokens[b]
    completion = scores.completion[m, b]
    n = len(correct)
    codes = (correct * 4 + partial * 2 + formatted).tolist()
    mid = [f"{(k >> 2) & 1},{(k >> 2) & 1}.0,{(k >> 1) & 1},{k & 1}," for k in range(8)]
    rows = "".join(
        f"{pre}{mid[k]}{lat:.3f},{pt},{ct},\n"
        for pre, k, lat, pt, ct in zip(
            prefixes[b], codes, latency.tolist(), prompt.tolist(), completion.tolist(),
            strict=True,
        )
    )  # fmt: skip
    n_correct = int(correct.sum())
    per_cat_n = scores.onehot.sum(axis=0)
    per_cat_correct = correct.astype(np.int64) @ scores.onehot
    total_s = float(latency.sum()) / 1000
    metrics = {
        "accuracy": round(n_correct / n, 6),
        "partial_accuracy": round(int(partial.sum()) / n, 6),
        "format_accuracy": round(int(formatted.sum()) / n, 6),
        "mean_score": round(n_correct / n, 6),
        "n": n,
        "scored": n,
        "correct": n_correct,
        "errors": 0,
        "error_rate": 0.0,
        "latency_ms": {
            "mean": round(float(latency.mean()), 3),
            "p50": round(float(np.percentile(latency, 50)), 3),
            "p95": round(float(np.percentile(latency, 95)), 3),
        },
        "total_time_s": round(total_s, 3),
        "prompt_tokens": int(prompt.sum()),
        "completion_tokens": int(completion.sum()),
        "wall_time_s": round(total_s / 4 + 0.01, 3),
        "categories": {
            name: {
                "accuracy": round(int(per_cat_correct[i]) / int(per_cat_n[i]), 6),
                "n": int(per_cat_n[i]),
                "errors": 0,
            }
            for i, name in sorted(enumerate(CATEGORIES), key=lambda t: t[1])
            if per_cat_n[i]
        },
        "error_patterns": {},
    }
    return json.dumps(metrics, indent=2) + "\n", CSV_HEADER + rows


def initial_params(scores: Scores, models: list[str], benches: list[str], items: int) -> dict:
    """params.yaml of the synthetic matrix."""
    return {
        "axes": {"model": list(models), "benchmark": list(benches)},
        "models": {
            name: {
                "adapter": "baseline",
                "strategy": "solver",
                "error_rate": round(1 - float(scores.ability[i]), 3),
                "seed": i + 1,
            }
            for i, name in enumerate(models)
        },
        "benchmarks": {
            name: {"loader": "arith", "n_items": items, "seed": j + 1, "difficulty": "easy"}
            for j, name in enumerate(benches)
        },
        "run": {"jobs": 4},
    }


def make_manifest(
    params: dict,
    cells: list[tuple[str, str]],
    when: datetime,
    parent: str | None,
    command: list[str],
    filters: dict[str, list[str]],
    items: int,
) -> tuple[str, str]:
    """An execution of ``cells`` built with evalledger's own models: (id, YAML text)."""
    from evalledger.manifest import (
        CellRecord,
        CellStatus,
        ExecutionManifest,
        ExecutionStatus,
        GitState,
        dump_manifest,
        new_execution_id,
        new_experiment_name,
    )
    from evalledger.matrix import cell_from_axes, config_hash
    from evalledger.params import parse_spec

    spec = parse_spec(params)
    records = {}
    for index, (model, bench) in enumerate(cells):
        cell = cell_from_axes({"model": model, "benchmark": bench})
        start = when + timedelta(milliseconds=5 * index)
        records[cell.key] = CellRecord(
            axes=dict(cell.axes), stage=cell.stage,
            experiment=new_experiment_name(cell.values),
            config_hash=config_hash(cell.effective_config(spec)),
            status=CellStatus.COMPLETED, examples_completed=items, examples_total=items,
            examples_errored=0, error=None, started_at=start,
            finished_at=start + timedelta(milliseconds=80), attempts=1,
        )  # fmt: skip
    done = when + timedelta(milliseconds=5 * len(cells) + 200)
    manifest = ExecutionManifest(
        execution_id=new_execution_id(when), created_at=when, updated_at=done,
        status=ExecutionStatus.COMPLETED, command=command, overrides=[], filters=filters,
        config=params, git=GitState(commit=parent, branch="main", dirty=False),
        jobs=params["run"]["jobs"], cells=records,
    )  # fmt: skip
    return manifest.execution_id, dump_manifest(manifest)


class FastImport:
    """A ``git fast-import`` process fed one commit at a time."""

    def __init__(self, repo: Path) -> None:
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--done"],
            cwd=repo, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
        )  # fmt: skip
        self.marks = 0
        self.bytes = 0

    def _write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.bytes += len(data)

    def commit(self, message: str, when: datetime, files: dict[str, str]) -> str:
        """Commit ``files`` (path -> text) on top of the previous commit; its SHA."""
        self.marks += 1
        stamp = f"{int(when.timestamp())} +0000"
        who = f"{IDENTITY['GIT_AUTHOR_NAME']} <{IDENTITY['GIT_AUTHOR_EMAIL']}>"
        msg = message.encode()
        head = (
            f"commit refs/heads/main\nmark :{self.marks}\nauthor {who} {stamp}\n"
            f"committer {who} {stamp}\ndata {len(msg)}\n"
        ).encode()
        self._write(head + msg + b"\n")
        if self.marks > 1:
            self._write(f"from :{self.marks - 1}\n".encode())
        for path, text in files.items():
            data = text.encode()
            self._write(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        self._write(f"\nget-mark :{self.marks}\n".encode())
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.flush()
        sha = self.proc.stdout.readline().decode().strip()
        if len(sha) != 40:
            raise RuntimeError(f"git fast-import failed: {self.error()}")
        return sha

    def error(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace").strip()[-2000:]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"done\n")
        self.proc.stdin.close()
        code = self.proc.wait()
        error = self.error()
        self.err.close()
        if code != 0:
            raise RuntimeError(f"git fast-import exited {code}: {error}")


@dataclass
class Ledger:
    """A built synthetic ledger."""

    root: Path
    cells: int
    items: int
    commits: int
    changed_last: list[str]
    build_s: float
    stream_mb: float
    changed_cells_last: int


def build_ledger(
    root: Path,
    n_models: int,
    n_benches: int,
    items: int,
    commits: int,
    per_commit: int,
    dvc: str,
) -> Ledger:
    """Write the synthetic ledger's whole history with git fast-import, then check it out."""
    t0 = time.perf_counter()
    root.mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main"], root)
    sh(["git", "config", "commit.gpgsign", "false"], root)
    sh([dvc, "init", "-q"], root)
    sh([dvc, "config", "core.analytics", "false"], root)
    base_files = {
        rel: (root / rel).read_text(encoding="utf-8")
        for rel in (".dvc/config", ".dvc/.gitignore", ".dvcignore")
        if (root / rel).is_file()
    }
    models = [f"m{i:03d}" for i in range(n_models)]
    benches = [f"b{j:03d}" for j in range(n_benches)]
    prefixes = [
        [f"{bench}-{i:04d},{CATEGORIES[i % len(CATEGORIES)]}," for i in range(items)]
        for bench in benches
    ]
    scores = Scores(n_models, n_benches, items, seed=20260105)
    params = initial_params(scores, models, benches, items)

    fi = FastImport(root)
    parent: str | None = None
    changed: list[str] = []
    n_changed_cells = 0
    try:
        for k in range(1, commits + 1):
            when = T0 + timedelta(hours=k - 1)
            if k == 1:
                idx = list(range(n_models))
                command, filters = ["evalledger", "run", "--commit"], {}
                files = {**base_files, ".gitignore": GITIGNORE, "dvc.yaml": DVC_YAML}
            else:
                start = ((k - 2) * per_commit) % n_models
                idx = sorted({(start + i) % n_models for i in range(per_commit)})
                rng = np.random.default_rng((20260105, k))
                for i in idx:
                    scores.ability[i] = np.clip(scores.ability[i] + rng.normal(0, 0.04), 0.3, 0.97)
                    params["models"][models[i]].update(
                        error_rate=round(1 - float(scores.ability[i]), 3), seed=1000 * k + i
                    )
                scores.evaluate(idx, rng)
                changed = [models[i] for i in idx]
                command = ["evalledger", "run", "--models", ",".join(changed), "--commit"]
                filters = {"model": changed}
                files = {}
            files["params.yaml"] = yaml.safe_dump(params, sort_keys=False)
            cells = [(models[i], bench) for i in idx for bench in benches]
            n_changed_cells = len(cells)
            for i in idx:
                for j, bench in enumerate(benches):
                    metrics, csv = cell_files(scores, prefixes, i, j)
                    files[f"metrics/{models[i]}/{bench}.json"] = metrics
                    files[f"metrics/{models[i]}/{bench}.scores.csv"] = csv
            exec_id, text = make_manifest(params, cells, when, parent, command, filters, items)
            files[f"runs/{exec_id}/manifest.yaml"] = text
            message = f"evalledger: {exec_id} ({len(cells)}/{len(cells)} cells completed)"
            parent = fi.commit(message, when + timedelta(minutes=10), files)
    finally:
        fi.close()
    sh(["git", "reset", "-q", "--hard", "main"], root)
    dirty = sh(["git", "status", "--porcelain"], root).stdout.strip()
    if dirty:
        raise RuntimeError(f"synthetic repo not clean after checkout:\n{dirty[:500]}")
    return Ledger(
        root=root, cells=n_models * n_benches, items=items, commits=commits,
        changed_last=changed, build_s=time.perf_counter() - t0, stream_mb=fi.bytes / 1e6,
        changed_cells_last=n_changed_cells if commits > 1 else 0,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Timing commands
# --------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock times of one command (or an error instead)."""

    label: str
    times: list[float] = field(default_factory=list)
    error: str | None = None
    stdout: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None

    def line(self) -> str:
        if self.error:
            return f"{self.label:<34}: FAILED"
        fmt = ", ".join(f"{t:.3f}" for t in self.times)
        return f"{self.label:<34}: median {self.median:8.3f} s of [{fmt}]"


def run_timed(label: str, cmd: list[str], cwd: Path, repeats: int, *, before: Any = None) -> Timing:
    """Time ``repeats`` runs of ``cmd`` (calling ``before()`` untimed ahead of each)."""
    result = Timing(label)
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            out = (proc.stdout + "\n" + proc.stderr).strip()
            result.error = f"`{' '.join(cmd)}` exited {proc.returncode}:\n{out[-4000:]}"
            break
        result.times.append(secs)
        result.stdout = proc.stdout
    log(result.line())
    if result.error:
        log("  " + result.error.replace("\n", "\n  "))
    return result


def show_head(stdout: str, lines: int = 4) -> None:
    """Print the size and the first lines of a command's output."""
    rows = stdout.rstrip("\n").splitlines()
    log(f"  output: {len(rows)} lines, {len(stdout)} chars; first lines:")
    for row in rows[:lines]:
        log(f"    | {row[:110]}")


def ratio(slow: float | None, fast: float | None) -> float | None:
    """``slow / fast``, or None when either is missing."""
    if slow is None or fast is None or fast <= 0:
        return None
    return slow / fast


def fmt_ratio(value: float | None, target: float) -> str:
    """``29.7x (target >= 10x: meets)``."""
    if value is None:
        return "n/a"
    verdict = "meets" if value >= target else "BELOW"
    return f"{value:.1f}x (target >= {target:.0f}x: {verdict})"


def count_dvc_metrics(stdout: str) -> tuple[int, int]:
    """Metric files with data, and leaf values, in ``dvc metrics show --json`` output."""
    data = json.loads(stdout or "{}")

    def leaves(obj: Any) -> int:
        if isinstance(obj, dict):
            return sum(leaves(v) for v in obj.values())
        return 1

    files = values = 0
    for rev in data.values():
        for content in (rev.get("data") or {}).values():
            if isinstance(content, dict) and "data" in content:
                files += 1
                values += leaves(content["data"])
    return files, values


@dataclass
class HistoryResults:
    """Results of parts (a) and (b)."""

    rows: list[tuple[str, Timing | None, Timing | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def evalledger_ready(evalledger: str | None, cwd: Path) -> tuple[bool, str]:
    """Whether ``evalledger leaderboard`` and ``evalledger diff`` exist (their --help works)."""
    if evalledger is None:
        return False, "evalledger is not installed"
    for sub in ("leaderboard", "diff"):
        proc = sh([evalledger, sub, "--help"], cwd, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
            return False, f"`evalledger {sub} --help` exited {proc.returncode}: {tail}"
    return True, ""


def bench_history(
    ledger: Ledger, evalledger: str | None, dvc: str, repeats: int, skip_dvc: bool
) -> HistoryResults:
    """Parts (a) and (b): leaderboard and diff, cold and warm, against DVC."""
    root = ledger.root
    res = HistoryResults()
    cache = root / ".evalledger" / "cache"

    def drop_cache() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    ready, why = evalledger_ready(evalledger, root)
    if not ready:
        log(f"evalledger leaderboard/diff: not available ({why}); measuring DVC only")
        res.notes.append(f"evalledger leaderboard/diff not measured: {why}")

    log(f"== (a) leaderboard: {ledger.cells} cells at HEAD ==")
    lb_cold = lb_warm = None
    if ready:
        assert evalledger is not None
        cmd = [evalledger, "leaderboard"]
        lb_cold = run_timed("evalledger leaderboard (cold)", cmd, root, repeats, before=drop_cache)
        if not lb_cold.error:
            show_head(lb_cold.stdout)
            lb_warm = run_timed("evalledger leaderboard (warm)", cmd, root, repeats)
            if not lb_warm.error and lb_warm.stdout != lb_cold.stdout:
                res.notes.append("leaderboard output differs between cold and warm cache")
        if lb_cold.error:
            res.notes.append("evalledger leaderboard FAILED (error printed above)")
    dvc_show = None
    if skip_dvc:
        log("dvc metrics show                  : skipped (--skip-dvc)")
    else:
        cmd = [dvc, "metrics", "show", "--json"]
        show_json = run_timed("dvc metrics show --json (1 run)", cmd, root, 1)
        if not show_json.error:
            files, values = count_dvc_metrics(show_json.stdout)
            log(
                f"  dvc sees {files} metric files with data (expected {ledger.cells}), "
                f"{values} values ({values / max(files, 1):.0f} per file)"
            )
            if files != ledger.cells:
                res.notes.append(f"dvc metrics show --json saw {files} of {ledger.cells} files")
        dvc_show = run_timed("dvc metrics show", [dvc, "metrics", "show"], root, repeats)
        if not dvc_show.error:
            show_head(dvc_show.stdout, 2)
    ref = dvc_show.median if dvc_show else None
    for name, t in (("cold", lb_cold), ("warm", lb_warm)):
        if t is not None and t.median is not None and ref is not None:
            log(f"ratio dvc metrics show / evalledger leaderboard ({name}): "
                f"{fmt_ratio(ratio(ref, t.median), LEDGER_TARGET)}")  # fmt: skip
    res.rows += [("leaderboard, cold cache", lb_cold, dvc_show)]
    res.rows += [("leaderboard, warm cache", lb_warm, dvc_show)]

    log()
    log(
        f"== (b) diff HEAD~1 HEAD: {ledger.changed_cells_last} cells re-evaluated "
        f"(models {', '.join(ledger.changed_last) or '-'}) =="
    )
    d_cold = d_warm = None
    if ready:
        assert evalledger is not None
        cmd = [evalledger, "diff", "HEAD~1", "HEAD"]
        label = "evalledger diff HEAD~1 HEAD (cold)"
        d_cold = run_timed(label, cmd, root, repeats, before=drop_cache)
        if not d_cold.error:
            show_head(d_cold.stdout, 6)
            d_warm = run_timed("evalledger diff HEAD~1 HEAD (warm)", cmd, root, repeats)
            if not d_warm.error and d_warm.stdout != d_cold.stdout:
                res.notes.append("diff output differs between cold and warm cache")
        if d_cold.error:
            res.notes.append("evalledger diff FAILED (error printed above)")
    dvc_diff = None
    if skip_dvc:
        log("dvc metrics diff HEAD~1           : skipped (--skip-dvc)")
    else:
        log("  (dvc metrics diff compares HEAD~1 with the workspace, = HEAD in this clean repo)")
        cmd = [dvc, "metrics", "diff", "HEAD~1", "--json"]
        diff_json = run_timed("dvc metrics diff HEAD~1 --json (1)", cmd, root, 1)
        if not diff_json.error:
            changed = json.loads(diff_json.stdout or "{}")
            n_values = sum(len(v) for v in changed.values())
            log(
                f"  dvc reports {len(changed)} changed metric files (expected "
                f"{ledger.changed_cells_last}), {n_values} changed values"
            )
        cmd = [dvc, "metrics", "diff", "HEAD~1"]
        dvc_diff = run_timed("dvc metrics diff HEAD~1", cmd, root, repeats)
    ref = dvc_diff.median if dvc_diff else None
    for name, t in (("cold", d_cold), ("warm", d_warm)):
        if t is not None and t.median is not None and ref is not None:
            log(f"ratio dvc metrics diff / evalledger diff ({name}): "
                f"{fmt_ratio(ratio(ref, t.median), LEDGER_TARGET)}")  # fmt: skip
    res.rows += [("diff HEAD~1 HEAD, cold cache", d_cold, dvc_diff)]
    res.rows += [("diff HEAD~1 HEAD, warm cache", d_warm, dvc_diff)]
    return res


# --------------------------------------------------------------------------------------
# Paired bootstrap
# --------------------------------------------------------------------------------------


def paired_data(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlated per-item scores of two models on the same ``n`` items."""
    rng = np.random.default_rng((seed, 7))
    if kind == "binary":
        a = rng.random(n) < 0.70
        # P(b | a) = 0.9, P(b | not a) = 0.3: mean 0.72, strongly correlated with a.
        b = np.where(a, rng.random(n) < 0.9, rng.random(n) < 0.3)
        return a.astype(np.float64), b.astype(np.float64)
    a = rng.beta(5.0, 2.0, n)
    b = np.clip(a + rng.normal(0.02, 0.1, n), 0.0, 1.0)
    return a, b


@dataclass
class BootResult:
    """One kind of data: times and CI endpoints of both methods over several seeds."""

    kind: str
    ours_s: list[float] = field(default_factory=list)
    scipy_s: list[float] = field(default_factory=list)
    ours_ci: list[tuple[float, float]] = field(default_factory=list)
    scipy_ci: list[tuple[float, float]] = field(default_factory=list)
    ours_diff: float = math.nan
    p_value: float = math.nan
    path: str = "?"
    analytic_se: tuple[float, float] = (math.nan, math.nan)
    agree: bool | None = None
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.error or not self.ours_s or not self.scipy_s:
            return None
        return ratio(statistics.median(self.scipy_s), statistics.median(self.ours_s))


def quantile_se(boot_sd: float, level: float, resamples: int) -> float:
    """Monte Carlo SE of the ``level`` quantile of ``resamples`` draws, normal approximation."""
    z = statistics.NormalDist().inv_cdf(level)
    density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / boot_sd
    return math.sqrt(level * (1 - level) / resamples) / density


# SciPy draws from other seeds than evalledger: with equal seeds both can draw the very
# same indices (then the CIs are identical and say nothing about Monte Carlo error).
SCIPY_SEED = 1_000_000


def bench_bootstrap(kind: str, n: int, resamples: int, seeds: int) -> BootResult:
    """evalledger's paired bootstrap against scipy.stats.bootstrap on the same data."""
    import inspect

    from scipy import stats

    res = BootResult(kind)
    try:
        from evalledger.analysis.resampling import paired_bootstrap
    except ImportError as exc:
        res.error = f"evalledger.analysis.resampling.paired_bootstrap not importable: {exc}"
        log(f"  {res.error}")
        return res
    a, b = paired_data(kind, n, seed=1)
    # SciPy >= 1.15 takes `rng`; older versions `random_state`.
    rng_kw = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"

    def stat(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(y - x, axis=axis)

    for seed in range(seeds):
        t0 = time.perf_counter()
        try:
            ours = paired_bootstrap(a, b, n_resamples=resamples, seed=seed)
        except Exception as exc:
            res.error = f"paired_bootstrap raised {type(exc).__name__}: {exc}"
            log(f"  {res.error}")
            return res
        res.ours_s.append(time.perf_counter() - t0)
        res.ours_ci.append((float(ours.ci_low), float(ours.ci_high)))
        res.ours_diff, res.p_value = float(ours.diff), float(ours.p_value)
        res.path = str(ours.details.get("path", "?")) if hasattr(ours, "details") else "?"

        t0 = time.perf_counter()
        ref = stats.bootstrap(
            (a, b), stat, paired=True, vectorized=True, n_resamples=resamples,
            method="percentile", **{rng_kw: np.random.default_rng(SCIPY_SEED + seed)},
        )  # fmt: skip
        res.scipy_s.append(time.perf_counter() - t0)
        ci = ref.confidence_interval
        res.scipy_ci.append((float(ci.low), float(ci.high)))
        if seed == 0:
            sd = float(ref.standard_error)
            res.analytic_se = (
                quantile_se(sd, 0.025, resamples),
                quantile_se(sd, 0.975, resamples),
            )
    report_bootstrap(res, a, b)
    return res


def report_bootstrap(res: BootResult, a: np.ndarray, b: np.ndarray) -> None:
    """Print both methods' times and CIs, and whether the CIs agree."""
    k = len(res.ours_ci)
    true_diff = float(np.mean(b - a))
    log(
        f"  data: mean a {a.mean():.4f}, mean b {b.mean():.4f}, mean(b - a) {true_diff:+.5f}, "
        f"corr {np.corrcoef(a, b)[0, 1]:.2f}"
    )
    fmt = ", ".join
    log(
        f"  evalledger paired_bootstrap : median {statistics.median(res.ours_s):.3f} s of "
        f"[{fmt(f'{t:.3f}' for t in res.ours_s)}]; diff {res.ours_diff:+.5f}, "
        f"p {res.p_value:.4g}, path {res.path}"
    )
    log(
        f"  scipy.stats.bootstrap       : median {statistics.median(res.scipy_s):.3f} s of "
        f"[{fmt(f'{t:.3f}' for t in res.scipy_s)}]"
    )
    if abs(res.ours_diff - true_diff) > 1e-9:
        log(f"  ! paired_bootstrap diff {res.ours_diff:+.6f} is not mean(b - a) {true_diff:+.6f}")
    ours, ref = np.array(res.ours_ci), np.array(res.scipy_ci)
    log(f"  95% CI, seed 0   : evalledger [{ours[0, 0]:+.5f}, {ours[0, 1]:+.5f}]  "
        f"scipy [{ref[0, 0]:+.5f}, {ref[0, 1]:+.5f}]")  # fmt: skip
    mo, mr = ours.mean(axis=0), ref.mean(axis=0)
    log(f"  95% CI, mean of {k} seeds: evalledger [{mo[0]:+.5f}, {mo[1]:+.5f}]  "
        f"scipy [{mr[0]:+.5f}, {mr[1]:+.5f}]")  # fmt: skip
    worst = 0.0
    for end, name in ((0, "low"), (1, "high")):
        # Monte Carlo SE of one run's endpoint, from the bootstrap SD (normal approximation
        # of the quantile's sampling error); the SDs over seeds are printed as a check.
        per_run = res.analytic_se[end]
        sd_o = float(ours[:, end].std(ddof=1)) if k > 1 else math.nan
        sd_r = float(ref[:, end].std(ddof=1)) if k > 1 else math.nan
        se_gap = per_run * math.sqrt(2 / k)
        gap = abs(float(ours[:, end].mean() - ref[:, end].mean()))
        worst = max(worst, gap / se_gap)
        log(
            f"  CI {name:<4}: gap of the {k}-seed means {gap:.6f} = {gap / se_gap:.2f} MC SE; "
            f"MC SE of one run {per_run:.6f} (SD over seeds: evalledger {sd_o:.6f}, "
            f"scipy {sd_r:.6f})"
        )
    res.agree = worst <= 3.0
    log(f"  same CI within Monte Carlo error (both endpoints within 3 SE): "
        f"{'yes' if res.agree else 'NO'}")  # fmt: skip
    log(f"  ratio scipy / evalledger: {fmt_ratio(res.ratio, BOOT_TARGET)}")


# --------------------------------------------------------------------------------------
# Summary and main
# --------------------------------------------------------------------------------------


def summary(ledger: Ledger | None, hist: HistoryResults | None, boots: list[BootResult]) -> None:
    """The final table: one line per comparison, with its target and whether it was met."""
    log()
    log("== bench_history summary ==")
    if ledger is not None:
        log(
            f"ledger: {ledger.cells} cells x {ledger.items} items, {ledger.commits} commits, "
            f"built in {ledger.build_s:.1f} s"
        )
    head = (
        f"{'comparison':<32} {'evalledger':>11} {'reference':>11} {'ratio':>8} {'target':>7}  met"
    )
    log(head)
    log("-" * len(head))

    def row(
        name: str, ours: float | None, ref: float | None, target: float, extra: str = ""
    ) -> None:
        r = ratio(ref, ours)
        o = "FAILED" if ours is None else f"{ours:.3f} s"
        f = "n/a" if ref is None else f"{ref:.3f} s"
        rs = "n/a" if r is None else f"{r:.1f}x"
        met = "n/a" if r is None else ("yes" if r >= target else "NO")
        log(f"{name:<32} {o:>11} {f:>11} {rs:>8} {'>= ' + str(int(target)) + 'x':>7}  {met}{extra}")

    if hist is not None:
        for name, ours_t, ref_t in hist.rows:
            ours = ours_t.median if ours_t is not None else None
            ref = ref_t.median if ref_t is not None else None
            if ours_t is None and ref is not None:
                log(f"{name:<32} {'not run':>11} {ref:>9.3f} s {'n/a':>8} {'>= 10x':>7}  n/a")
                continue
            row(name, ours, ref, LEDGER_TARGET)
    for b in boots:
        name = f"paired bootstrap ({b.kind})"
        if b.error:
            log(f"{name:<32} {'FAILED':>11} {'':>11} {'n/a':>8} {'>= 5x':>7}  n/a")
            continue
        agree = "" if b.agree is None else f"; same CI: {'yes' if b.agree else 'NO'}"
        row(name, statistics.median(b.ours_s), statistics.median(b.scipy_s), BOOT_TARGET, agree)
    notes = (hist.notes if hist else []) + [f"{b.kind}: {b.error}" for b in boots if b.error]
    for note in notes:
        log(f"  ! {note}")


def main(argv: list[str] | None = None) -> int:
    """Parse options, build the ledger in a temporary directory, measure, summarise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100, help="models (default 100)")
    parser.add_argument("--benchmarks", type=int, default=100, help="benchmarks (default 100)")
    parser.add_argument("--items", type=int, default=200, help="items per cell (default 200)")
    parser.add_argument("--commits", type=int, default=50, help="commits (default 50)")
    parser.add_argument(
        "--changed-models", type=int, default=2, help="models re-evaluated per later commit"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per command")
    parser.add_argument("--boot-items", type=int, default=10_000, help="paired items (c)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (c)")
    parser.add_argument("--boot-seeds", type=int, default=5, help="seeds per method in (c)")
    parser.add_argument("--skip-dvc", action="store_true", help="skip the DVC references")
    parser.add_argument("--skip-bootstrap", action="store_true", help="skip part (c)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic repo")
    args = parser.parse_args(argv)
    if min(args.models, args.benchmarks, args.items, args.commits, args.repeats) < 1:
        parser.error("sizes, --commits and --repeats must be positive")
    if args.commits < 2:
        parser.error("--commits must be at least 2 (diff HEAD~1 HEAD needs a parent)")
    dvc, evalledger = tool("dvc"), tool("evalledger")
    if dvc is None or shutil.which("git") is None:
        parser.error("git and dvc must be installed")
    per_commit = max(1, min(args.changed_models, args.models))

    work = Path(tempfile.mkdtemp(prefix="evalledger-bench-history-"))
    log(f"working in {work}")
    log(
        f"evalledger: {evalledger}  dvc: {dvc} ({sh([dvc, '--version'], work).stdout.strip()})  "
        f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs"
    )
    ledger = hist = None
    boots: list[BootResult] = []
    try:
        log(
            f"== building the ledger: {args.models} models x {args.benchmarks} benchmarks, "
            f"{args.items} items, {args.commits} commits =="
        )
        ledger = build_ledger(
            work / "ledger", args.models, args.benchmarks, args.items, args.commits,
            per_commit, dvc,
        )  # fmt: skip
        log(
            f"built in {ledger.build_s:.1f} s ({ledger.stream_mb:.0f} MB fast-import stream, "
            f"{ledger.changed_cells_last} cells per later commit); git status clean"
        )
        log()
        hist = bench_history(ledger, evalledger, dvc, args.repeats, args.skip_dvc)
        if not args.skip_bootstrap:
            for kind in ("binary", "continuous"):
                log()
                log(
                    f"== (c) paired bootstrap, {kind} scores: {args.boot_items} items, "
                    f"{args.resamples} resamples, {args.boot_seeds} seeds per method =="
                )
                boots.append(
                    bench_bootstrap(kind, args.boot_items, args.resamples, args.boot_seeds)
                )
        summary(ledger, hist, boots)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
