"""One exit-code table (errors.EXIT_CODES): the README shows it, and each case exits with it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import SMALL_PARAMS, counting_params, invoke, make_project
from evalledger import errors
from evalledger.errors import EXIT_CODES
from evalledger.project import Project

README = Path(__file__).parent.parent / "README.md"


def _readme_table() -> dict[int, str]:
    text = README.read_text()
    section = text[text.index("### Exit codes") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def test_the_readme_table_is_the_code_table() -> None:
    assert _readme_table() == EXIT_CODES


def test_every_exit_constant_is_in_the_table() -> None:
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert codes == set(EXIT_CODES)
    subclasses = [errors.ConfigError, errors.NothingToResumeError, errors.RunLockedError,
                  errors.RegressionError, errors.InterruptedRun, errors.CellError]  # fmt: skip
    assert {c.exit_code for c in subclasses} <= set(EXIT_CODES)


def _wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_bad_input_exits_2(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver", "-b", "arith").exit_code == 0
    for args in (["run", "--models", "nosuch"], ["show", "nosuch"], ["leaderbord"],
                 ["run", "--jobs", "0"], ["diff", "--models", "nosuch"]):  # fmt: skip
        result = invoke(project, *args)
        assert result.exit_code == 2, (args, result.output)


def test_cells_failed_exits_1(counting_project: tuple[Project, Path]) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, n_items=5, fail_at="all"))
    (flags / "fail_on").touch()
    result = invoke(project, "run")
    assert result.exit_code == 1, result.output
    assert "evalledger run --resume" in result.stderr


def test_nothing_to_resume_exits_3(project: Project) -> None:
    assert invoke(project, "run", "--resume").exit_code == 3


def test_locked_exits_4(project: Project) -> None:
    from evalledger.execution.plan import run_lock

    with run_lock(project, "another run"):
        result = invoke(project, "run")
    assert result.exit_code == 4, result.output


def test_the_gate_exits_5(project: Project) -> None:
    assert invoke(project, "run", "--commit").exit_code == 0
    worse = SMALL_PARAMS.replace("error_rate: 0.3", "error_rate: 0.95")
    project.params_path.write_text(worse)
    assert invoke(project, "run").exit_code == 0
    result = invoke(project, "diff", "--fail-on-regression")
    assert result.exit_code == 5, result.output


def test_interrupted_exits_130(tmp_path: Path) -> None:
    slow = (
        "axes:\n  model: [slow]\n  benchmark: [arith]\n"
        "models: {slow: {adapter: baseline, latency_ms: 50, max_concurrency: 1}}\n"
        "benchmarks: {arith: {loader: arith, n_items: 400}}\n"
    )
    project = make_project(tmp_path / "p", slow)
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalledger", "run"], cwd=project.root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: any(project.root.glob("runs/*/manifest.yaml")))
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "evalledger run --resume" in stderr
