"""A configuration evaluated in an older commit is restored from history, not paid again.

Real git and DVC: a local python model (no response-cache identity) is evaluated at one
configuration, then another, both committed; going back to the first makes its cells
stale in dvc.lock, and `run` must restore that commit's outputs instead of calling the
model, unless the data or code changed, the predictions are gone, or `--force` is given.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import calls, dvc, git, invoke
from evalledger.project import Project

CELLS = ["counter/arith", "counter/arith_hard"]
GATE = "gate_at: -1"


def _outputs(project: Project) -> dict[str, bytes]:
    kinds = (("metrics", ".json"), ("metrics", ".scores.csv"), ("predictions", ".jsonl"))
    rels = [f"{d}/{k}{ext}" for k in CELLS for d, ext in kinds]
    return {rel: (project.root / rel).read_bytes() for rel in rels}


def _run(project: Project, *args: str) -> str:
    out = invoke(project, "run", *args)
    assert out.exit_code == 0, out.output
    return out.stdout


def _exec_id(stdout: str) -> str:
    found = re.search(r"^(exec_\S+): completed", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def _edit(project: Project, old: str, new: str) -> None:
    text = project.params_path.read_text()
    assert old in text
    project.params_path.write_text(text.replace(old, new))


def _two_configs(project: Project, flags: Path) -> tuple[str, dict[str, bytes]]:
    """The first configuration evaluated and committed, then a second; the first's ID."""
    first = _exec_id(_run(project, "--commit"))
    kept = _outputs(project)
    _edit(project, GATE, "gate_at: -5")  # another configuration, same answers
    _run(project, "--commit")
    assert len(calls(flags)) == 160
    return first, kept


def _pushed_cache_gone_reverted(
    project: Project, flags: Path, store: Path
) -> tuple[str, dict[str, bytes]]:
    """Both configurations pushed to a folder remote, the local DVC cache deleted, and
    params.yaml reverted to the first; the first's ID and outputs."""
    dvc(project.root, "remote", "add", "-d", "store", str(store))
    git(project.root, "add", ".dvc/config")
    git(project.root, "commit", "-qm", "a DVC remote")
    first, kept = _two_configs(project, flags)
    dvc(project.root, "push", "-A")
    shutil.rmtree(project.root / ".dvc" / "cache")
    assert invoke(project, "revert", first).exit_code == 0
    return first, kept


def _dvc_clean(project: Project) -> bool:
    return json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_reverting_to_an_older_config_restores_its_outputs_without_calling_the_model(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    first, kept = _two_configs(project, flags)
    revert = invoke(project, "revert", first)
    assert revert.exit_code == 0, revert.output
    assert revert.stdout.splitlines()[-1] == (
        f"next: `evalledger run` restores 2 cell(s) evaluated identically in {first}, "
        "evaluates none"
    )
    dry = _run(project, "--dry-run")
    assert dry.splitlines()[:2] == [
        "new run: 0 cells to evaluate, 0 up to date",
        f"would restore 2 cells' outputs from {first} (evaluated before at the same "
        "configuration, data and code): 80 model calls saved",
    ]
    runs = sorted(p.name for p in (project.root / "runs").iterdir())

    out = invoke(project, "run")
    assert out.exit_code == 0, out.output
    assert out.stderr == ""  # no warning about evaluating again: nothing was
    assert out.stdout.splitlines() == [
        f"restored 2 cells' outputs from {first} (evaluated before at the same "
        "configuration, data and code) instead of evaluating them: 80 model calls saved",
        "all 2 selected cells are up to date (dvc.lock matches params and outputs); "
        "use --force to evaluate them again",
    ]
    assert len(calls(flags)) == 160  # the model was not called
    assert sorted(p.name for p in (project.root / "runs").iterdir()) == runs
    assert _outputs(project) == kept  # byte for byte the first commit's
    assert _dvc_clean(project)
    assert "2 up to date" in _run(project, "--dry-run")

    forced = _run(project, "--force")
    assert "2/2 cells completed" in forced and "restored" not in forced
    assert len(calls(flags)) == 240


def test_an_override_back_to_an_older_value_restores_it_too(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    _two_configs(project, flags)
    out = _run(project, "-S", "models.counter.options.gate_at=-1", "--models", "counter",
               "--benchmarks", "arith")  # fmt: skip
    assert "restored 1 cell's outputs from exec_" in out and "40 model calls saved" in out
    assert len(calls(flags)) == 160
    assert GATE in project.params_path.read_text()  # written, as a run writes overrides
    status = json.loads(dvc(project.root, "status", "--json").stdout)
    assert list(status) == ["eval@counter-arith_hard"]  # left at the other configuration


def test_changed_code_is_not_reused(counting_project: tuple[Project, Path]) -> None:
    project, flags = counting_project
    first, _ = _two_configs(project, flags)
    (project.root / "helper.py").write_text("VALUE = 1\n")
    git(project.root, "add", "helper.py")
    git(project.root, "commit", "-qm", "code change")
    assert invoke(project, "revert", first).exit_code == 0
    out = _run(project)
    assert "restored" not in out and "2/2 cells completed" in out
    assert len(calls(flags)) == 240


def test_changed_benchmark_data_is_not_reused(tmp_path: Path) -> None:
    from conftest import COUNTING_MODEL, make_project

    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "counting_model.py").write_text(COUNTING_MODEL)
    data = tmp_path / "proj" / "data"
    data.mkdir(parents=True)
    (data.parent / ".gitignore").write_text("/data/\n")  # the data is no code
    rows = [{"id": f"q-{i}", "input": f"{i} + 1", "target": str(i + 1)} for i in range(5)]
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = _file_params(flags)
    project = make_project(tmp_path / "proj", params)
    first = _exec_id(_run(project, "--commit"))
    _edit(project, GATE, "gate_at: -5")
    _run(project, "--commit")
    assert len(calls(flags)) == 10
    rows[0]["target"] = "changed"
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert invoke(project, "revert", first).exit_code == 0
    out = _run(project)
    assert "restored" not in out and "1/1 cells completed" in out
    assert len(calls(flags)) == 15


def _file_params(flags: Path) -> str:
    return f"""\
axes:
  model: [counter]
  benchmark: [qa]
models:
  counter:
    adapter: python
    callable: counting_model:generate
    path: {flags}
    options: {{log: {flags / "calls.log"}, gate_at: -1, fail_at: -1, flags: {flags}}}
benchmarks:
  qa: {{loader: jsonl, path: data/qa.jsonl}}
"""


def test_predictions_in_no_cache_or_remote_are_evaluated_with_a_warning(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    first, _ = _two_configs(project, flags)
    shutil.rmtree(project.root / ".dvc" / "cache")
    assert invoke(project, "revert", first).exit_code == 0
    out = invoke(project, "run")
    assert out.exit_code == 0, out.output
    assert "restored" not in out.stdout and "2/2 cells completed" in out.stdout
    assert len(calls(flags)) == 240
    warning = [line for line in out.stderr.splitlines() if "already evaluated" in line]
    assert warning == [
        f"Warning: 2 cell(s) were already evaluated with the same configuration, data and "
        f"code (e.g. counter/arith in {first}); 2 of them run again because no DVC cache "
        "or remote holds their predictions (`dvc push` keeps them)"
    ]
    assert _dvc_clean(project)


def test_predictions_on_a_folder_remote_are_restored(
    tmp_path: Path, counting_project: tuple[Project, Path]
) -> None:
    project, flags = counting_project
    first, kept = _pushed_cache_gone_reverted(project, flags, tmp_path / "store")
    data = json.loads(_run(project, "--json"))
    assert data["cells"] == [] and data["ok"]
    assert data["reused"] == {k: {"execution_id": first, "items": 40} for k in CELLS}
    assert len(calls(flags)) == 160
    assert _outputs(project) == kept
    assert _dvc_clean(project)


def test_a_network_remote_is_asked_through_dvc_at_the_old_commit(
    tmp_path: Path, counting_project: tuple[Project, Path]
) -> None:
    """Predictions in no local folder are fetched by DVC at the commit that recorded them."""
    from dataclasses import replace

    from evalledger.execution.reuse import _fetch, find_reusable
    from evalledger.matrix import expand

    project, flags = counting_project
    first, kept = _pushed_cache_gone_reverted(project, flags, tmp_path / "store")
    spec = project.spec(reload=True)
    hits = find_reusable(project, spec, expand(spec)).found
    assert sorted(hits) == CELLS and all(h.execution_id == first for h in hits.values())
    hit = replace(hits["counter/arith"], predictions=None)  # as for an s3:// remote
    assert _fetch(project, hit) == kept["predictions/counter/arith.jsonl"]


def test_run_commit_commits_what_was_restored(counting_project: tuple[Project, Path]) -> None:
    project, flags = counting_project
    first, kept = _two_configs(project, flags)
    assert invoke(project, "revert", first).exit_code == 0
    out = _run(project, "--commit")
    assert "80 model calls saved" in out and "committed " in out
    assert len(calls(flags)) == 160
    assert git(project.root, "status", "--porcelain", "--untracked-files=no") == ""
    message = git(project.root, "log", "-1", "--format=%B")
    assert message.startswith(f"evalledger: restored 2 cells from {first}")
    changed = set(git(project.root, "show", "--name-only", "--format=", "HEAD").split())
    # the scores are the same at both configurations (same answers): unchanged, so uncommitted
    assert changed == {"dvc.lock", "params.yaml", *(r for r in kept if r.endswith(".json"))}
    assert _dvc_clean(project)
