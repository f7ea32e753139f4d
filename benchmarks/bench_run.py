#!/usr/bin/env python3
"""Benchmark evalledger against plain DVC on throwaway projects.

(a) run speed: ``evalledger run`` in project A against ``dvc repro`` in an identical
    copy B, then check that both leave ``dvc status`` clean and agree on every cell's
    accuracy.
(b) resume planning: ``evalledger run --resume --dry-run`` against ``dvc status`` on a
    finished project whose latest execution is made to look interrupted.
(c) ``--scaling``: the scaling table instead. ``evalledger run`` of 100, 1,000 and 10,000
    cells (``--scale-cells``) of 5 items, and of one cell of 100,000 and 1,000,000 items
    (``--scale-items``): wall time, ms per cell or µs per item, and the child's peak RSS,
    with ``dvc status`` on the same project where it finishes (up to
    ``--dvc-status-max`` cells). Targets: per-cell cost constant, 10,000 cells < 60 s,
    1M items < 300 MB.

Every result is printed next to its reference, measured in the same run; nothing is
asserted. Uses only the standard library and PyYAML; ``evalledger``, ``dvc`` and ``git``
must be on PATH. Run from anywhere:

    python benchmarks/bench_run.py [--cells 200] [--resume-cells 1000] [--items 20]
                                   [--resume-items 5] [--repeats 5] [--skip-dvc-repro]
                                   [--keep]
    python benchmarks/bench_run.py --scaling [--scale-cells 100,1000,10000]
                                   [--scale-items 100000,1000000] [--dvc-status-max 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TARGET = 10.0
"""The speed-up evalledger aims for in both comparisons."""

RESUME_LINE = re.compile(r"^resume: (\d+) cells to evaluate, (\d+) up to date$")
CELL_LINE = re.compile(r"^\s+(\S+): (all|\d+) items left \((\d+) in checkpoint\)$")

# DVC's analytics report is no part of what we measure (and needs the network).
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def log(text: str = "") -> None:
    """Print a progress line at once (the script runs for minutes)."""
    print(text, flush=True)


def sh(cmd: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; raise with the output's tail on failure."""
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode} in {cwd}:\n{tail}")
    return proc


def timed(cmd: list[str], cwd: Path, *, check: bool = True) -> tuple[float, str]:
    """Wall-clock seconds of one run of ``cmd``, and its stdout."""
    t0 = time.perf_counter()
    proc = sh(cmd, cwd, check=check)
    return time.perf_counter() - t0, proc.stdout


def grid(cells: int) -> tuple[int, int]:
    """Models x benchmarks with at least ``cells`` cells, about 1.5 models per benchmark.

    200 gives 20 x 10 and 1000 gives 40 x 25: the largest divisor of ``cells`` not above
    sqrt(cells / 1.5), unless that is too lopsided.
    """
    ideal = math.sqrt(cells / 1.5)
    benches = next(b for b in range(max(1, int(ideal)), 0, -1) if cells % b == 0)
    if benches < ideal / 2:
        benches = max(1, round(ideal))
    return math.ceil(cells / benches), benches


def params_for(n_models: int, n_benches: int, items: int) -> dict[str, object]:
    """A params.yaml of instant baseline models over small arithmetic benchmarks."""
    models = {
        f"m{i}": {
            "adapter": "baseline",
            "strategy": "solver",
            "error_rate": round(0.3 * i / max(1, n_models - 1), 4),
            "seed": i,
        }
        for i in range(n_models)
    }
    benches = {
        f"b{j}": {"loader": "arith", "n_items": items, "seed": j, "difficulty": "easy"}
        for j in range(n_benches)
    }
    return {
        "axes": {"model": list(models), "benchmark": list(benches)},
        "models": models,
        "benchmarks": benches,
        "run": {"jobs": 4},
    }


def build_project(root: Path, n_models: int, n_benches: int, items: int) -> Path:
    """``git init``, ``evalledger init``, write the matrix into params.yaml, commit."""
    root.mkdir(parents=True)
    sh(["git", "init", "-q"], root)
    sh(["git", "config", "user.email", "bench@example.com"], root)
    sh(["git", "config", "user.name", "bench"], root)
    sh(["git", "config", "commit.gpgsign", "false"], root)
    sh(["evalledger", "init", "."], root)
    text = yaml.safe_dump(params_for(n_models, n_benches, items), sort_keys=False)
    (root / "params.yaml").write_text(text, encoding="utf-8")
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "init"], root)
    return root


def dvc_clean(project: Path) -> tuple[bool, str]:
    """Whether ``dvc status --json`` reports nothing, and a short description of it."""
    out = sh(["dvc", "status", "--json"], project).stdout.strip()
    try:
        data = json.loads(out or "{}")
    except ValueError:
        return False, f"unparseable output: {out[:200]!r}"
    if data == {}:
        return True, "clean"
    return False, f"{len(data)} stage(s) not up to date, e.g. {next(iter(data))}"


def accuracies(project: Path) -> dict[str, float]:
    """Cell key (``model/benchmark``) -> the "accuracy" of its metrics file."""
    out = {}
    for path in sorted((project / "metrics").glob("*/*.json")):
        key = f"{path.parent.name}/{path.stem}"
        out[key] = json.loads(path.read_text(encoding="utf-8"))["accuracy"]
    return out


def compare_accuracies(a: dict[str, float], b: dict[str, float], expected: int) -> str:
    """One line saying whether two projects agree on every cell's accuracy."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    if not (only_a or only_b or differ) and len(a) == expected:
        return f"identical for all {expected} cells"
    parts = [f"A has {len(a)} cells, B has {len(b)} (expected {expected})"]
    if only_a:
        parts.append(f"only in A: {len(only_a)} (e.g. {only_a[0]})")
    if only_b:
        parts.append(f"only in B: {len(only_b)} (e.g. {only_b[0]})")
    if differ:
        k = differ[0]
        parts.append(f"{len(differ)} differ (e.g. {k}: {a[k]} vs {b[k]})")
    return "MISMATCH: " + "; ".join(parts)


def ratio(slow: float | None, fast: float | None) -> str:
    """``slow / fast`` as ``29.7x``, with a verdict against the target."""
    if slow is None or fast is None or fast <= 0:
        return "n/a"
    r = slow / fast
    verdict = "meets" if r >= TARGET else "BELOW"
    return f"{r:.1f}x (target >= {TARGET:.0f}x: {verdict})"


@dataclass
class RunSpeed:
    """Results of part (a)."""

    cells: int
    evalledger_s: float
    dvc_s: float | None = None
    notes: list[str] = field(default_factory=list)


def bench_run_speed(work: Path, cells: int, items: int, skip_dvc: bool) -> RunSpeed:
    """Part (a): ``evalledger run`` in A against ``dvc repro`` in an identical copy B."""
    n_models, n_benches = grid(cells)
    n_cells = n_models * n_benches
    log(
        f"== (a) run speed: {n_models} models x {n_benches} benchmarks = {n_cells} cells, "
        f"{items} items each =="
    )
    a = build_project(work / "run_a", n_models, n_benches, items)
    b = work / "run_b"
    shutil.copytree(a, b, symlinks=True)

    secs, out = timed(["evalledger", "run"], a)
    result = RunSpeed(cells=n_cells, evalledger_s=secs)
    log(f"evalledger run  : {secs:7.2f} s  ({secs / n_cells * 1000:.1f} ms/cell)")
    log(f"  last line     : {out.strip().splitlines()[-1] if out.strip() else '(no output)'}")
    clean, desc = dvc_clean(a)
    log(f"  dvc status    : {desc}")
    if not clean:
        result.notes.append(f"A not clean after evalledger run: {desc}")
    acc_a = accuracies(a)
    log(f"  metrics files : {len(acc_a)} (expected {n_cells})")

    if skip_dvc:
        log("dvc repro       : skipped (--skip-dvc-repro)")
        return result
    secs, _ = timed(["dvc", "repro"], b)
    result.dvc_s = secs
    log(f"dvc repro       : {secs:7.2f} s  ({secs / n_cells * 1000:.1f} ms/cell)")
    clean, desc = dvc_clean(b)
    log(f"  dvc status    : {desc}")
    if not clean:
        result.notes.append(f"B not clean after dvc repro: {desc}")
    same = compare_accuracies(acc_a, accuracies(b), n_cells)
    log(f"  accuracy A/B  : {same}")
    if same.startswith("MISMATCH"):
        result.notes.append(f"accuracy {same}")
    log(f"ratio dvc repro / evalledger run: {ratio(result.dvc_s, result.evalledger_s)}")
    return result


def measured(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, the child's own peak RSS (MiB, from wait4) and its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode} in {cwd}")
    return wall, usage.ru_maxrss / 1024, out


def bench_scaling(work: Path, cell_sizes: list[int], item_sizes: list[int],
                  dvc_status_max: int) -> None:  # fmt: skip
    """Part (c): how the cost of a run grows with cells and with items."""
    log("== (c) scaling: evalledger run, 5 items a cell; then one cell of many items ==")
    log(f"{'run':<22} {'time':>9} {'per unit':>13} {'peak RSS':>10}   dvc status")
    for cells in cell_sizes:
        n_models, n_benches = grid(cells)
        project = build_project(work / f"cells-{cells}", n_models, n_benches, 5)
        wall, peak, _ = measured(["evalledger", "run"], project)
        n = n_models * n_benches
        status = "skipped"
        if n <= dvc_status_max:
            secs, _ = timed(["dvc", "status"], project)
            status = f"{secs:.1f} s ({dvc_clean(project)[1]})"
        log(f"{n:>7,} cells x 5      {wall:8.1f}s {wall / n * 1000:9.2f} ms/c "
            f"{peak:8.0f} MiB   {status}")  # fmt: skip
        shutil.rmtree(project, ignore_errors=True)
    for items in item_sizes:
        project = build_project(work / f"items-{items}", 1, 1, items)
        wall, peak, _ = measured(["evalledger", "run"], project)
        log(f"1 cell x {items:>9,}   {wall:8.1f}s {wall / items * 1e6:9.1f} us/i "
            f"{peak:8.0f} MiB")  # fmt: skip
        done = kill_halfway(project, items)
        back, back_peak, _ = measured(["evalledger", "run", "--resume"], project)
        log(f"  resumed, {done / items:4.0%} done {back:8.1f}s {back / wall:9.0%} of run "
            f"{back_peak:6.0f} MiB")  # fmt: skip
        shutil.rmtree(project, ignore_errors=True)


def kill_halfway(project: Path, items: int) -> int:
    """``run --force`` SIGKILLed once its manifest counts half the items; the count then."""
    before = set((project / "runs").glob("*/manifest.yaml"))
    proc = subprocess.Popen(["evalledger", "run", "--force"], cwd=project, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    done = 0
    while proc.poll() is None and done < items // 2:
        time.sleep(0.2)
        for manifest in set((project / "runs").glob("*/manifest.yaml")) - before:
            found = re.findall(r'"examples_completed": (\d+)', manifest.read_text())
            done = max([done, *map(int, found)])
    proc.kill()
    proc.wait()
    return done


def simulate_interruption(project: Path) -> tuple[int, int, str]:
    """Mark the newest execution and half of its cells unfinished, with 2 items in flight.

    Returns the cells and items that should remain, and the newest manifest's path.
    """
    manifest_file = sorted((project / "runs").glob("exec_*/manifest.yaml"))[-1]
    data = yaml.safe_load(manifest_file.read_text(encoding="utf-8"))
    data["status"] = "in_progress"
    checkpoints = project / ".evalledger" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"id": f"x{i}", "correct": True}) + "\n" for i in (1, 2))
    cells = items = 0
    for index, rec in enumerate(data["cells"].values()):
        if index % 2:
            continue
        rec.update(status="in_progress", examples_completed=2, finished_at=None)
        slug = "__".join(rec["axes"].values())
        (checkpoints / f"{slug}.{rec['config_hash']}.jsonl").write_text(lines)
        cells += 1
        items += max(0, (rec.get("examples_total") or 0) - 2)
    manifest_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return cells, items, str(manifest_file.relative_to(project))


def parse_plan(stdout: str) -> tuple[int | None, int, int, bool]:
    """From the dry-run output: cells to evaluate, items left, items in checkpoints.

    The last value is True when some cell's items left are unknown ("all").
    """
    lines = stdout.splitlines()
    first = RESUME_LINE.match(lines[0].strip()) if lines else None
    cells = int(first.group(1)) if first else None
    left = in_checkpoint = 0
    unknown = False
    for line in lines[1:]:
        m = CELL_LINE.match(line)
        if not m:
            continue
        if m.group(2) == "all":
            unknown = True
        else:
            left += int(m.group(2))
        in_checkpoint += int(m.group(3))
    return cells, left, in_checkpoint, unknown


def median_time(cmd: list[str], cwd: Path, repeats: int) -> tuple[float, list[float], str]:
    """Median wall-clock time of ``repeats`` runs after one untimed warm-up run."""
    timed(cmd, cwd)
    times, out = [], ""
    for _ in range(repeats):
        secs, out = timed(cmd, cwd)
        times.append(secs)
    return statistics.median(times), times, out


@dataclass
class ResumeSpeed:
    """Results of part (b)."""

    cells: int
    plan_s: float
    status_s: float
    notes: list[str] = field(default_factory=list)


def bench_resume_planning(work: Path, cells: int, items: int, repeats: int) -> ResumeSpeed:
    """Part (b): ``evalledger run --resume --dry-run`` against ``dvc status``."""
    n_models, n_benches = grid(cells)
    n_cells = n_models * n_benches
    log(
        f"== (b) resume planning: {n_models} models x {n_benches} benchmarks = {n_cells} "
        f"cells, {items} items each =="
    )
    project = build_project(work / "resume", n_models, n_benches, items)
    secs, out = timed(["evalledger", "run"], project)
    log(f"setup: evalledger run of all cells took {secs:.2f} s")
    log(f"  last line     : {out.strip().splitlines()[-1] if out.strip() else '(no output)'}")
    clean, desc = dvc_clean(project)
    log(f"  dvc status    : {desc}")
    want_cells, want_items, manifest_rel = simulate_interruption(project)
    log(
        f"simulated interruption in {manifest_rel}: {want_cells} cells in progress, "
        f"2 items each in checkpoint, {want_items} items left"
    )
    before = (project / manifest_rel).read_bytes()

    plan_cmd = ["evalledger", "run", "--resume", "--dry-run"]
    plan_s, plan_times, plan_out = median_time(plan_cmd, project, repeats)
    status_s, status_times, _ = median_time(["dvc", "status"], project, repeats)
    result = ResumeSpeed(cells=n_cells, plan_s=plan_s, status_s=status_s)
    if not clean:
        result.notes.append(f"resume project not clean after evalledger run: {desc}")

    fmt = ", ".join
    log(
        f"evalledger run --resume --dry-run: median {plan_s:.3f} s of "
        f"[{fmt(f'{t:.3f}' for t in plan_times)}]"
    )
    log(
        f"dvc status                       : median {status_s:.3f} s of "
        f"[{fmt(f'{t:.3f}' for t in status_times)}]"
    )
    got_cells, left, in_ck, unknown = parse_plan(plan_out)
    first = plan_out.splitlines()[0] if plan_out else "(no output)"
    log(
        f"plan says       : {first!r}; {left} items left, {in_ck} in checkpoints"
        + (" (some cells: all items)" if unknown else "")
    )
    log(
        f"expected        : {want_cells} cells, {want_items} items left, "
        f"{2 * want_cells} in checkpoints"
    )
    if (got_cells, left, in_ck, unknown) != (want_cells, want_items, 2 * want_cells, False):
        result.notes.append(f"plan differs from expected: {first!r}, {left} items left")
    if (project / manifest_rel).read_bytes() != before:
        result.notes.append("the dry run rewrote the manifest")
        log("  manifest      : CHANGED by the dry runs")
    else:
        log("  manifest      : unchanged by the dry runs")
    log(f"ratio dvc status / evalledger plan: {ratio(status_s, plan_s)}")
    return result


def summary(a: RunSpeed, b: ResumeSpeed | None) -> None:
    """The final block: one line per comparison, then any problems seen."""
    log()
    log("== bench_run summary ==")
    dvc = "skipped" if a.dvc_s is None else f"{a.dvc_s:.1f} s"
    log(
        f"(a) {a.cells} cells: evalledger run {a.evalledger_s:.1f} s, dvc repro {dvc} -> "
        f"{ratio(a.dvc_s, a.evalledger_s)}"
    )
    if b is not None:
        log(
            f"(b) {b.cells} cells: plan resume {b.plan_s:.2f} s, dvc status {b.status_s:.1f} s "
            f"-> {ratio(b.status_s, b.plan_s)}"
        )
    notes = a.notes + (b.notes if b else [])
    for note in notes:
        log(f"  ! {note}")
    if not notes:
        log("  checks: dvc status clean, accuracies identical, plan as expected")


def main(argv: list[str] | None = None) -> int:
    """Parse options, run both parts in a temporary directory, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200, help="cells for (a) (default 200)")
    parser.add_argument("--items", type=int, default=20, help="items per cell in (a)")
    parser.add_argument("--resume-cells", type=int, default=1000, help="cells for (b)")
    parser.add_argument("--resume-items", type=int, default=5, help="items per cell in (b)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command in (b)")
    parser.add_argument("--skip-dvc-repro", action="store_true", help="skip dvc repro in (a)")
    parser.add_argument("--skip-resume", action="store_true", help="skip part (b)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--scaling", action="store_true", help="only the scaling table (c)")
    parser.add_argument("--scale-cells", default="100,1000,10000", help="cells for (c)")
    parser.add_argument("--scale-items", default="100000,1000000", help="items of one cell (c)")
    parser.add_argument("--dvc-status-max", type=int, default=1000,
                        help="largest project (cells) timed with dvc status in (c)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.resume_items < 3:
        parser.error("--resume-items must be at least 3 (2 items are put in flight)")
    for tool in ("git", "dvc", "evalledger"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH")

    work = Path(tempfile.mkdtemp(prefix="evalledger-bench-"))
    log(f"working in {work}")
    log(
        f"evalledger: {shutil.which('evalledger')}  dvc: {shutil.which('dvc')} "
        f"({sh(['dvc', '--version'], work).stdout.strip()})  python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    try:
        if args.scaling:
            sizes = [int(x) for x in args.scale_cells.split(",") if x]
            items = [int(x) for x in args.scale_items.split(",") if x]
            bench_scaling(work, sizes, items, args.dvc_status_max)
            return 0
        a = bench_run_speed(work, args.cells, args.items, args.skip_dvc_repro)
        log()
        b = None
        if not args.skip_resume:
            b = bench_resume_planning(work, args.resume_cells, args.resume_items, args.repeats)
        summary(a, b)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
