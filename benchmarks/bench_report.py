#!/usr/bin/env python3
"""Time ``evalledger report`` on the big synthetic ledger of bench_history.py.

The ledger (default: 100 models x 100 benchmarks = 10,000 cells of 200 items, 50
commits) is built by ``bench_history.build_ledger``. ``evalledger report`` then writes
the page (Overview, History over the 50 commits, Breakdown, Items capped at
``ITEM_CAP`` rows, Flips); printed: its wall time and peak memory (the child's max RSS),
the file's size, and the same for ``evalledger leaderboard --format html`` (the
single-table page it replaces), measured in the same run. Targets: under 10 s and a
file under 20 MB, with the items cap stated in the page. Nothing is asserted.

    python benchmarks/bench_report.py [--models 100] [--benchmarks 100] [--items 200]
                                      [--commits 50] [--keep]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_history import build_ledger, tool

TIME_TARGET_S = 10.0
SIZE_TARGET_MB = 20.0


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds and the peak RSS (MiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--benchmarks", type=int, default=100)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="Keep the temporary ledger.")
    args = ap.parse_args(argv)
    evalledger, dvc = tool("evalledger"), tool("dvc")
    if evalledger is None or dvc is None:
        print("needs evalledger and dvc next to this Python or on PATH")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        ledger = build_ledger(tmp / "ledger", args.models, args.benchmarks, args.items,
                              args.commits, 2, dvc)  # fmt: skip
        root = ledger.root
        print(f"ledger: {ledger.cells} cells x {args.items} items, {ledger.commits} commits "
              f"(built in {ledger.build_s:.1f} s)")  # fmt: skip
        # a first run warms the parsed-file cache and vl-convert's bundle, as a second
        # report in CI would; both are timed
        for label in ("cold", "warm"):
            wall, peak, proc = timed([evalledger, "report", "-o", "report.html"], root)
            if proc.returncode != 0:
                print(proc.stderr)
                return 1
            size = (root / "report.html").stat().st_size / 2**20
            print(
                f"report ({label}):      {wall:6.2f} s (target < {TIME_TARGET_S:g}), "
                f"{size:5.1f} MB (target < {SIZE_TARGET_MB:g}), peak RSS {peak:.0f} MiB"
            )
        capped = "Showing the first" in (root / "report.html").read_text()
        print(f"items cap stated in the page: {'yes' if capped else 'no'}")
        warm_report = wall
        # the reference: the page the report replaces, on the same ledger, cold and warm
        for path in (root / ".evalledger" / "cache").glob("parsed-*"):
            path.unlink()
        cold_ref, _, _ = timed([evalledger, "leaderboard", "--format", "html"], root)
        ref, _, proc = timed([evalledger, "leaderboard", "--format", "html"], root)
        print(
            f"leaderboard --format html (reference): cold {cold_ref:6.2f} s, warm "
            f"{ref:6.2f} s, {len(proc.stdout) / 2**20:5.2f} MB"
        )
        print(f"report / leaderboard, warm: {warm_report / ref:.1f}x the time, for every view")
        print("(peak RSS is the largest of the children so far: the report's, run first)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
