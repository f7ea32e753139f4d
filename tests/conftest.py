"""Fixtures: temporary git+DVC evalledger projects, and a CLI runner bound to them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from click.testing import CliRunner, Result

from evalledger.cli import cli
from evalledger.execution.scaffold import init_project
from evalledger.project import Project

if TYPE_CHECKING:
    import ledger_factory as lf

# The console scripts (evalledger, dvc) of this interpreter must be the ones on PATH:
# dvc repro runs `evalledger cell` through the shell.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Tables are laid out for a pipe (160 columns) unless a test sets $COLUMNS itself;
# pytest-xdist gives its workers the terminal's COLUMNS.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)
# CI has no git identity; DVC must not phone home.
for var, value in {
    "GIT_AUTHOR_NAME": "evalledger tests",
    "GIT_AUTHOR_EMAIL": "tests@evalledger.invalid",
    "GIT_COMMITTER_NAME": "evalledger tests",
    "GIT_COMMITTER_EMAIL": "tests@evalledger.invalid",
    "DVC_NO_ANALYTICS": "1",
}.items():
    os.environ.setdefault(var, value)

SMALL_PARAMS = """\
# small demo matrix for tests
axes:
  model: [solver, noisy, adder]
  benchmark: [arith, arith_hard]
models:
  solver: {adapter: baseline, strategy: solver}
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
  adder: {adapter: baseline, strategy: adder}
benchmarks:
  arith: {loader: arith, n_items: 30, seed: 1, difficulty: easy}
  arith_hard: {loader: arith, n_items: 20, seed: 2, difficulty: hard}
run:
  jobs: 3
"""


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> lf.Built:
    """The ledger of ``tests/ledger_factory.py``, built once for each test module."""
    import ledger_factory  # it imports this module

    name = request.module.__name__.removeprefix("test_")
    return ledger_factory.build_ledger(tmp_path_factory.mktemp(name) / "proj")


@pytest.fixture
def fresh(built: lf.Built, tmp_path: Path) -> lf.Built:
    """A private copy of ``built``, for tests that write to the project or its cache."""
    import ledger_factory

    return ledger_factory.copy_ledger(built, tmp_path / "copy")


#: Test files that start Ray: run on one xdist worker, one after the other (see below).
_RAY_TESTS = ("tests/test_ray_cluster.py", "tests/test_ray_executor.py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Every Ray test on one worker, the others balanced one by one as with ``--dist load``.

    Two workers each holding a Ray (a two-node cluster's module fixture set up on both)
    stopped each other's; and ``--dist loadgroup`` with ``xdist_group`` marks did not
    group here (pytest 9.2, xdist 3.8: the test ids it renames keep their names).
    """
    from xdist.scheduler import LoadScopeScheduling

    class RayTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if nodeid.startswith(_RAY_TESTS) else nodeid

    return RayTogether(config, log)


COUNTING_MODEL = '''\
"""A test model that logs every call, and can block (a gate) or fail on demand."""
import os
import time
from pathlib import Path


def generate(prompt, item, log, gate_at=-1, fail_at=-1, flags="."):
    flags = Path(flags)
    index = int(item.id.rsplit("-", 1)[1])
    if index == gate_at and (flags / "gate_on").exists():
        (flags / f"blocked-{item.id}").touch()
        time.sleep(3600)
    if fail_at in (index, "all") and (flags / "fail_on").exists():
        raise ValueError(f"boom on {item.id}")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (item.id + "\\n").encode())
    os.close(fd)
    time.sleep(0.002)
    return f"The answer is {item.target}."
'''


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_project(root: Path, params: str = SMALL_PARAMS) -> Project:
    project, _ = init_project(root)
    (root / "params.yaml").write_text(params)
    from evalledger.execution.pipeline import sync_dvc_yaml

    sync_dvc_yaml(project, project.spec(reload=True))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return project


def counting_params(
    flags: Path, *, n_items: int = 40, gate_at: int = -1, fail_at: int | str = -1, jobs: int = 2
) -> str:
    return textwrap.dedent(f"""\
        axes:
          model: [counter]
          benchmark: [arith, arith_hard]
        models:
          counter:
            adapter: python
            callable: counting_model:generate
            path: {flags}
            options: {{log: {flags / "calls.log"}, gate_at: {gate_at}, fail_at: {fail_at},
                       flags: {flags}}}
        benchmarks:
          arith: {{loader: arith, n_items: {n_items}, seed: 1, difficulty: easy}}
          arith_hard: {{loader: arith, n_items: {n_items}, seed: 2, difficulty: hard}}
        run:
          jobs: {jobs}
        """)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A committed git+DVC project with a small 3x2 demo matrix."""
    return make_project(tmp_path / "proj")


@pytest.fixture
def counting_project(tmp_path: Path) -> tuple[Project, Path]:
    """A project whose one model logs each call to flags/calls.log."""
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "counting_model.py").write_text(COUNTING_MODEL)
    return make_project(tmp_path / "proj", counting_params(flags)), flags


def invoke(project: Project | Path, *args: str) -> Result:
    root = project.root if isinstance(project, Project) else project
    return CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=False)


def listed(project: Project) -> dict[str, dict[str, Any]]:
    """``evalledger list --json`` (ledger executions only), by execution id."""
    import json

    out = invoke(project, "list", "--json", "--no-experiments")
    assert out.exit_code == 0, out.output
    return {row["execution_id"]: row for row in json.loads(out.output)}


def calls(flags: Path) -> list[str]:
    log = flags / "calls.log"
    return log.read_text().split() if log.exists() else []


def _untimed(value: Any) -> Any:
    """Metrics without what the clock decides."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items()
                if "latency" not in k and not k.endswith("_time_s")}  # fmt: skip
    return value


def ledger_files(root: Path, params: bool = True) -> dict[str, Any]:
    """A project's ledger files, with timings (and, unless ``params``, dvc.lock's params)
    taken out."""
    files: dict[str, Any] = {}
    for path in sorted((root / "metrics").rglob("*.scores.csv")):
        files[path.relative_to(root).as_posix()] = path.read_text()
    for path in sorted((root / "metrics").rglob("*.json")):
        files[path.relative_to(root).as_posix()] = _untimed(json.loads(path.read_text()))
    for path in sorted((root / "predictions").rglob("*.jsonl")):
        rows = [_untimed(json.loads(line)) for line in path.read_text().splitlines()]
        files[path.relative_to(root).as_posix()] = rows
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        if not params:
            stage.pop("params")
        for out in stage["outs"]:
            if not out["path"].endswith(".scores.csv"):  # the others hold timings
                out.pop("md5"), out.pop("size")
    files["dvc.lock"] = lock
    return files


# The reliability suite (tests/reliability/): each trial reports through the `reliability`
# fixture, and the run ends with one summary line of the figures (kills survived,
# corruption cases handled, traversals refused, secrets found). A trial records its
# outcome before it asserts, so a failing trial still counts.
#: kind -> (trials, passed); "secret" counts scans and the secrets found in them.
_TALLY: dict[str, Counter[str]] = {}
_LABELS = {
    "kill": "kills survived",
    "corruption": "corruption cases handled",
    "traversal": "traversal attempts refused",
}


def record(kind: str, ok: bool, found: int = 0) -> None:
    """Count one trial of ``kind``; for ``secret`` scans, ``found`` is the secrets seen."""
    tally = _TALLY.setdefault(kind, Counter())
    tally["trials"] += 1
    tally["passed"] += int(ok)
    tally["found"] += found


@pytest.fixture
def reliability() -> Callable[..., None]:
    """``reliability(kind, ok, found=0)``: count a trial in the suite's summary line."""
    return record


def summary_line() -> str | None:
    """The figures of this run, or None when no reliability trial ran."""
    if not _TALLY:
        return None
    parts = []
    for kind, label in _LABELS.items():
        if kind in _TALLY:
            t = _TALLY[kind]
            parts.append(f"{label} {t['passed']}/{t['trials']}")
    if "secret" in _TALLY:
        t = _TALLY["secret"]
        parts.append(f"secrets found {t['found']} in {t['trials']} scans")
    return "reliability: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary_line()
    if line is not None:
        terminalreporter.write_line(line)
