"""README's worked training example, run as written; then the issue's acceptance on it.

The section "A worked example: digits, ..." is turned into one bash script: a block
titled ``params.yaml`` / ``prepare.py`` / ``train.py`` is written to that file, a bash
block runs as it is (``pip install`` lines excepted: the test environment has them). The
result (a real SGDClassifier trained on digits, swept over three learning rates with
``dvc exp run --queue`` + ``dvc queue start``) is then checked: ``dvc plots diff`` draws
one chart per metric with a series per experiment, ``dvc exp show`` has the config keys
and one column per metric, ``evalledger diff main lr-0.1 --md`` shows the config change,
``val.loss`` with its direction and a paired test, ``evalledger reproduce lr-0.1`` gives
``match``, and a SIGKILLed run shows ``crashed`` and resumes to the same numbers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import dvc, git, invoke
from evalledger.track.series import read_series_dir

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### A worked example: digits"
EXPERIMENTS = ("lr-0.001", "lr-0.03", "lr-0.1")
METRICS = ("train/loss", "val/loss", "val/acc")
#: Imported by ``python train.py`` through PYTHONPATH: each step takes 0.3 s more, so
#: the test can kill the run in the middle.
SLOW_STEPS = """\
import time
from evalledger.track.tracker import Tracker

_log = Tracker.log_metrics


def _slow(self, *args, **kwargs):
    _log(self, *args, **kwargs)
    time.sleep(0.3)


Tracker.log_metrics = _slow
"""


def walkthrough_blocks(text: str) -> list[tuple[str, str]]:
    """(file name or ``bash``, content) for each code block of the README's section."""
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    fence = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```$', re.M | re.S)
    blocks = []
    for lang, title, body in fence.findall(text[start:end]):
        assert title or lang == "bash", f"a {lang} block without a title= file name"
        blocks.append((title or "bash", body))
    return blocks


def walkthrough_script(blocks: list[tuple[str, str]]) -> str:
    """One bash script: files written with quoted heredocs, commands as they are."""
    lines = ["set -euo pipefail"]
    for name, body in blocks:
        if name == "bash":
            lines += [line for line in body.splitlines() if not line.startswith("pip install")]
        else:
            assert "EVALLEDGER_EOF" not in body
            lines += [f"cat > {name} <<'EVALLEDGER_EOF'", body.rstrip("\n"), "EVALLEDGER_EOF"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project the README's commands made, and their output."""
    base = tmp_path_factory.mktemp("walk")
    script = walkthrough_script(walkthrough_blocks(README.read_text()))
    proc = subprocess.run(["bash", "-c", script], cwd=base, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return base / "digits", proc.stdout


def _exp_commit(root: Path, name: str) -> str:
    refs = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps")
    (sha,) = [line.split()[1] for line in refs.splitlines() if line.split()[0].endswith(name)]
    return sha


def test_the_readme_blocks_are_found() -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert [n for n, _ in blocks if n != "bash"] == ["params.yaml", "prepare.py", "train.py"]
    assert "dvc queue start" in walkthrough_script(blocks)


def test_every_experiment_ran_and_committed_its_run(walked: tuple[Path, str]) -> None:
    root, _ = walked
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    names = {e["name"] for row in shown for e in row.get("experiments") or []}
    assert names == set(EXPERIMENTS)
    for name in EXPERIMENTS:
        tree = git(root, "ls-tree", "-r", "--name-only", _exp_commit(root, name)).split()
        assert any(p.startswith("runs/exp_") for p in tree)
        assert "metrics/_series/digits/val/loss.tsv" in tree
        assert "metrics/digits/digits.scores.csv" in tree


def test_dvc_plots_diff_overlays_the_three_experiments(walked: tuple[Path, str]) -> None:
    root, _ = walked
    data = json.loads(dvc(root, "plots", "diff", *EXPERIMENTS, "--json").stdout)["data"]
    assert sorted(data) == sorted(f"metrics/_series/digits/{m}.tsv" for m in METRICS)
    for path, charts in data.items():
        assert len(charts) == 1, path  # one chart per metric
        revs = {v["rev"] for v in charts[0]["content"]["data"]["values"]}
        assert revs == set(EXPERIMENTS), (path, revs)  # with a series per experiment


def test_dvc_exp_show_has_config_keys_and_one_column_per_metric(
    walked: tuple[Path, str],
) -> None:
    root, _ = walked
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    rows = [e["revs"][0]["data"] for row in shown for e in row.get("experiments") or []]
    assert len(rows) == 3
    metric_files = set()
    for data in rows:
        config = data["params"]["metrics/_params/digits.yaml"]["data"]
        assert set(config) == {"lr", "epochs", "seed"}
        assert config["lr"] == data["params"]["params.yaml"]["data"]["train"]["lr"]
        metric_files |= set(data["metrics"])
        summary = data["metrics"]["metrics/_experiments/digits.json"]["data"]
        assert set(summary) == {"train", "val", "step"} and set(summary["val"]) == {"loss", "acc"}
    # the same files in every experiment: nothing keyed by a run ID
    assert metric_files == {
        "metrics/_experiments/digits.json", "metrics/digits/digits.json",
        "metrics/solver/arith.json",
    }  # fmt: skip


def _summary(root: Path, rev: str) -> dict[str, Any]:
    text = git(root, "show", f"{rev}:metrics/_experiments/digits.json")
    return json.loads(text)  # type: ignore[no-any-return]


def test_the_diff_shows_config_loss_direction_and_a_paired_test(
    walked: tuple[Path, str],
) -> None:
    root, out = walked
    losses = {name: _summary(root, _exp_commit(root, name))["val"]["loss"] for name in EXPERIMENTS}
    assert min(losses, key=losses.__getitem__) == "lr-0.1"  # the README's pick is the best
    md = out[out.index("### evalledger diff") :]
    md = md[: md.index("</sub>")]
    assert "| `metrics/_params/digits.yaml:lr` | `0.01` | `0.1` |" in md
    assert "| `train.lr` | `0.01` | `0.1` |" in md
    (loss,) = [line for line in md.splitlines() if "| val.loss ↓ |" in line]
    assert loss.startswith("| better | `_experiments/digits` |")
    (acc,) = [line for line in md.splitlines() if "`digits/digits` | accuracy |" in line]
    cells = [c.strip() for c in acc.strip("|").split("|")]
    assert re.fullmatch(r"\[[-+][\d.]+, [-+][\d.]+\]", cells[6]) and cells[8] == "450"
    assert float(cells[7]) < 1  # a p-value
    assert "paired mcnemar tests on per-item scores" in md
    assert "↓: lower is better" in out
    data = json.loads(invoke(root, "diff", "main", "lr-0.1", "--json").stdout)
    by = {(c["cell"], c["metric"]): c for c in data["changes"]}
    assert by[("_experiments/digits", "val.loss")]["direction"] == "lower"
    assert by[("digits/digits", "accuracy")]["test"]["method"] == "mcnemar"


def test_reproduce_reruns_the_training_and_matches(walked: tuple[Path, str]) -> None:
    root, out = walked
    assert re.search(r"^reproduced lr-0\.1 \(\w+\): 2 match \(1 stage", out, re.M), out
    assert "1 cell(s) of tracked runs are judged with the stage that writes them" in out
    result = invoke(root, "reproduce", _exp_commit(root, "lr-0.1"), "--json", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(s["cell"], s["verdict"]) for s in data["stages"]] == [("train", "match")]
    assert data["ok"]


def test_a_killed_run_is_crashed_and_resumes_to_the_same_numbers(
    walked: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = walked
    (tmp_path / "sitecustomize.py").write_text(SLOW_STEPS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    before = set(os.listdir(root / "runs"))
    proc = subprocess.Popen([sys.executable, "train.py"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    series = root / "metrics" / "_series" / "digits" / "val" / "loss.tsv"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # killed once 3 steps are on disk
            new = set(os.listdir(root / "runs")) - before
            if new and series.is_file() and len(series.read_text().splitlines()) > 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the slowed run never wrote 3 steps")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (exp_id,) = new
    listed = json.loads(invoke(root, "list", "--json", "-E").stdout)
    assert {r["execution_id"]: r["status"] for r in listed}[exp_id] == "crashed"

    resumed = subprocess.run([sys.executable, "train.py", exp_id[-8:]], cwd=root,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    listed = json.loads(invoke(root, "list", "--json", "-E").stdout)
    assert {r["execution_id"]: r["status"] for r in listed}[exp_id] == "completed"
    steps = read_series_dir(root / "metrics" / "_series" / "digits")
    for metric in METRICS:
        assert [s for s, _ in steps[metric]] == list(range(8)), metric  # no gap, no repeat
    # the same seeded training as main's uninterrupted run, to the last digit
    assert json.loads((root / "metrics/_experiments/digits.json").read_text()) == _summary(
        root, "main"
    )
