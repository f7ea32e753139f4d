"""Third-party plugins register through entry points, exactly like the built-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import dvc, invoke, make_project
from evalledger.execution.executions import load_execution

PLUGIN = '''
"""A third-party plugin package: a model, a benchmark and a scorer."""
import asyncio

from evalledger.benchmarks.base import Benchmark, Item
from evalledger.models.base import Completion, Model, ModelSettings
from evalledger.scorers.base import ItemScore, Scorer


class ShoutSettings(ModelSettings):
    suffix: str = "!"


class ShoutModel(Model):
    """Answers with the capital of the country, shouted."""

    Settings = ShoutSettings

    async def agenerate(self, prompt, item, decoding):
        await asyncio.sleep(0)
        return Completion(text=item.meta.get("capital", "?").upper() + self.settings.suffix,
                          prompt_tokens=3, completion_tokens=1)


class Capitals(Benchmark):
    """A custom benchmark in the style of seed 001: load, extract, check."""

    DATA = [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Chad", "Ndjamena")]

    def load(self):
        return [Item(id=f"cap-{i}", input=f"Capital of {c}?", target=t, category="geo",
                     meta={"capital": t if c != "Chad" else "Abeche"})
                for i, (c, t) in enumerate(self.DATA)]

    def extract(self, text):
        return text.strip("!").strip(), text.endswith("!")

    def check(self, item, text):
        got, formatted = self.extract(text)
        ok = got.lower() == item.target.lower()
        return ItemScore(correct=ok, score=float(ok), extracted=got, formatted=formatted)


class LengthScorer(Scorer):
    """Correct when the output is short."""

    def score(self, item, output):
        ok = len(output) <= 6
        return ItemScore(correct=ok, score=float(ok), extracted=output)


def answer(prompt, item):
    return f"The answer is {item.target}."


async def answer_async(prompt):
    await asyncio.sleep(0.001)
    return {"text": "The answer is 7.", "prompt_tokens": 2, "completion_tokens": 4}
'''

ENTRY_POINTS = """\
[evalledger.models]
shout = myplug:ShoutModel

[evalledger.benchmarks]
capitals = myplug:Capitals

[evalledger.scorers]
short = myplug:LengthScorer
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """An installed distribution (dist-info with entry_points.txt) on a fresh sys.path."""
    site = tmp_path / "site"
    (site / "myplug").mkdir(parents=True)
    (site / "myplug" / "__init__.py").write_text(PLUGIN)
    info = site / "myplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


PARAMS = """\
axes:
  model: [shout, py, pyasync]
  benchmark: [capitals, capitals_short, arith]
models:
  shout: {adapter: shout, suffix: "!"}
  py: {adapter: python, callable: "myplug:answer"}
  pyasync: {adapter: python, callable: "myplug:answer_async", max_concurrency: 4}
benchmarks:
  capitals: {loader: capitals}
  capitals_short: {loader: capitals, scorer: short}
  arith: {loader: arith, n_items: 10}
"""


def _run(root: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "evalledger", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


def test_plugin_model_benchmark_scorer_and_python_adapter(tmp_path: Path, plugin_path: Path):
    project = make_project(tmp_path / "p", PARAMS)
    proc = _run(project.root, plugin_path, "run")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    m = load_execution(project, None)
    assert all(r.status.value == "completed" for r in m.cells.values())

    def metric(key: str) -> dict:  # type: ignore[type-arg]
        return json.loads((project.root / f"metrics/{key}.json").read_text())

    assert metric("shout/capitals")["accuracy"] == 0.75  # Chad's meta capital is wrong
    assert metric("shout/capitals")["format_accuracy"] == 1.0
    assert metric("shout/capitals_short")["accuracy"] == 0.75  # TOKYO! LIMA! PARIS! fit
    assert metric("py/capitals")["accuracy"] == 0.0  # "The answer is Paris." != Paris
    assert metric("py/arith")["accuracy"] == 1.0
    assert metric("pyasync/arith")["prompt_tokens"] == 20
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_unknown_plugin_names_list_the_known_ones(tmp_path: Path, plugin_path: Path) -> None:
    project = make_project(tmp_path / "p", PARAMS)
    cases = {
        "adapter: shout,": (
            "adapter: shuot,",
            "unknown model adapter 'shuot' in "
            "models.shout.adapter; known: baseline, openai, python, shout",
        ),
        "loader: capitals}": (
            "loader: capitls}",
            "unknown benchmark loader 'capitls' in "
            "benchmarks.capitals.loader; known: arith, capitals, csv",
        ),
        "scorer: short}": (
            "scorer: shrt}",
            "unknown scorer 'shrt' in benchmarks.capitals_short.scorer; known: choice, exact",
        ),
    }
    original = project.params_path.read_text()
    for old, (new, expected) in cases.items():
        project.params_path.write_text(original.replace(old, new))
        proc = _run(project.root, plugin_path, "run", "--force")
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    project.params_path.write_text(original)
    cell = _run(project.root, plugin_path, "cell", "model=shout", "benchmark=capitals")
    assert cell.returncode == 0 and "accuracy 0.750 on 4 items" in cell.stdout
    bad = textwrap.dedent(original).replace("loader: capitals}", "loader: nope}")
    project.params_path.write_text(bad)
    cell = _run(project.root, plugin_path, "cell", "model=shout", "benchmark=capitals")
    assert cell.returncode == 2 and cell.stderr.count("\n") == 1
    assert "unknown benchmark loader 'nope'" in cell.stderr and "Traceback" not in cell.stderr
    # every bad name was refused before an execution was created
    assert not list(project.runs_dir.glob("exec_*"))
    assert invoke(project, "status").exit_code == 3
