#!/usr/bin/env python3
"""Benchmark how long the evalledger CLI takes to start, against bare Python.

Each case is a fresh process, timed wall clock from spawn to exit; the median of
``--runs`` runs (after one untimed warm-up) is printed with its difference from
``python -c pass``, the reference measured in the same run, against the target: within
80 ms of bare Python. ``python -c "import click"`` is the floor of any click CLI.
``evalledger status`` runs in an empty temporary directory, where it fails at once with
one line: a simple command that reads no manifest. Bytecode is cached, as after any
install, in a throwaway ``PYTHONPYCACHEPREFIX``: even under PYTHONDONTWRITEBYTECODE the
source is compiled once, in the warm-up, and nothing is written beside it. Nothing is
asserted. Uses only the standard library; ``evalledger`` is taken from the running
Python's bin folder first, then PATH, else run as ``python -m evalledger``. Run from
anywhere:

    python benchmarks/bench_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 80.0
"""How far above ``python -c pass`` the CLI may start."""


def tool(name: str) -> str | None:
    """The executable ``name`` next to this Python (a venv's bin), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def median_ms(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> tuple[float, int]:
    """Median wall-clock milliseconds of ``runs`` runs of ``cmd``, and its exit code."""
    # The warm-up fills the file cache and the bytecode cache.
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
    times, code = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
        code = proc.returncode
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), code


def main(argv: list[str] | None = None) -> int:
    """Time each case and print it next to bare Python."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per case (default 20)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be positive")
    script = tool("evalledger")
    cli = [script] if script else [sys.executable, "-m", "evalledger"]
    py = sys.executable
    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        ('python -c "import click"', [py, "-c", "import click"]),
        ("evalledger --help", [*cli, "--help"]),
        ("evalledger --version", [*cli, "--version"]),
        ("evalledger list --help", [*cli, "list", "--help"]),
        ("evalledger diff --help", [*cli, "diff", "--help"]),
        ("evalledger status (no project)", [*cli, "status"]),
    ]
    print(f"evalledger: {' '.join(cli)}  python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, median of {args.runs} runs")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="evalledger-bench-startup-") as work:
        empty, pycache = Path(work, "empty"), Path(work, "pycache")
        empty.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
        base = None
        print(f"{'case':34} {'median':>9} {'- python':>9}  target: within {TARGET_MS:.0f} ms")
        for label, cmd in cases:
            ms, code = median_ms(cmd, empty, env, args.runs)
            base = ms if base is None else base
            extra = ms - base
            verdict = "" if label == "python -c pass" else (
                "ok" if extra <= TARGET_MS else "over")  # fmt: skip
            exit_note = f"  (exit {code})" if code else ""
            print(f"{label:34} {ms:7.1f} ms {extra:+7.1f} ms  {verdict}{exit_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
