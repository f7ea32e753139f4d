"""dvc.lock as evalledger writes it is byte for byte what ``dvc commit -f`` writes.

The runner records cells with its own serializer (``execution/lockfile.py``); here the
same stages are committed by DVC itself, from the same outputs, and the files compared:
with prompt files as deps, params that ruamel must quote, fold or write in flow style,
a command long enough to fold, a user stage before ours, and a second run that replaces
some entries in place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import dvc, git, invoke, make_project
from evalledger.project import Project

PARAMS = """\
axes:
  model: [solver, a_model_with_a_rather_long_name_so_that_the_command_folds]
  benchmark: [arith]
  prompt_set: [plain]
  condition: [control, treatment]
models:
  solver: {adapter: baseline, strategy: solver}
  a_model_with_a_rather_long_name_so_that_the_command_folds:
    adapter: baseline
    strategy: solver
    error_rate: 1.0e-05
    seed: 7
    system_error_rates: {"check: your work # twice": 0.1, "é — ünïcode": 0.5, "": 0.0}
benchmarks:
  arith: {loader: arith, n_items: 12, seed: 1, difficulty: easy}
prompt_sets:
  plain: {from: files}
conditions:
  control: {}
  treatment:
    description: "ask: 'check your work' - twice"
    notes: [1, 2.5, null, true, "yes", "0123", "a\\nb"]
"""
USER_STAGE = """\
  prepare:
    cmd: echo prepared > prepared.txt
    outs:
    - prepared.txt
"""


def _project(tmp_path: Path) -> Project:
    project = make_project(tmp_path / "proj", PARAMS)
    for condition, system in (("control", "Solve it."), ("treatment", "Check your work.")):
        folder = project.root / "prompts" / "plain" / condition
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "system.md").write_text(system + "\n")
        (folder / "user.md").write_text("{input}\n")
    text = (project.root / "dvc.yaml").read_text()
    (project.root / "dvc.yaml").write_text(text.replace("stages:\n", "stages:\n" + USER_STAGE))
    dvc(project.root, "repro", "prepare")  # a user stage's entry comes first in dvc.lock
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "prompts and a user stage")
    return project


def _stages(lock: str) -> list[str]:
    import yaml

    return list(yaml.safe_load(lock)["stages"])


def _dvc_commit(project: Project, lock_before: str | None, stages: list[str]) -> str:
    """What ``dvc commit -f`` writes for ``stages`` onto ``lock_before``."""
    other = project.root.parent / "by-dvc"
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(project.root, other, symlinks=True)
    shutil.rmtree(other / ".dvc" / "cache", ignore_errors=True)
    if lock_before is None:
        (other / "dvc.lock").unlink()
    else:
        (other / "dvc.lock").write_text(lock_before)
    dvc(other, "commit", "-f", "-q", *stages)
    return (other / "dvc.lock").read_text()


def test_our_dvc_lock_is_what_dvc_commit_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalledger.execution import pipeline

    project = _project(tmp_path)
    before = (project.root / "dvc.lock").read_text()

    def through_dvc(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cells were recorded through DVC, not by our serializer")

    monkeypatch.setattr(pipeline, "_record_batch", through_dvc)
    assert invoke(project, "run").exit_code == 0
    ours = (project.root / "dvc.lock").read_text()
    ours_stages = _stages(ours)
    assert ours_stages[0] == "prepare" and len(ours_stages) == 5
    assert "\n      condition=control\n" in ours  # the long command folded as ruamel folds
    assert ours == _dvc_commit(project, before, ours_stages[1:])
    status = dvc(project.root, "status", "--json").stdout.strip()
    assert status == "{}"
    # the predictions are in DVC's cache, read-only, as `dvc commit` leaves them
    import yaml

    for entry in yaml.safe_load(ours)["stages"].values():
        for out in entry["outs"]:
            if out["path"].startswith("predictions/"):
                cached = project.root / ".dvc/cache/files/md5" / out["md5"][:2] / out["md5"][2:]
                assert cached.read_bytes() == (project.root / out["path"]).read_bytes()
                assert cached.stat().st_mode & 0o777 == 0o444

    # a second run replaces some entries in place and leaves the others' text alone
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "first run")
    params = (project.root / "params.yaml").read_text().replace("n_items: 12", "n_items: 9")
    (project.root / "params.yaml").write_text(params)
    assert invoke(project, "run").exit_code == 0
    again = (project.root / "dvc.lock").read_text()
    assert _stages(again) == ours_stages
    assert again == _dvc_commit(project, ours, ours_stages[1:])
    assert dvc(project.root, "status", "--json").stdout.strip() == "{}"


def test_what_our_serializer_does_not_know_is_recorded_through_dvc(tmp_path: Path) -> None:
    """An edited eval stage or a configured cache dir: DVC writes the entries itself."""
    from evalledger.execution.lockfile import write_entries
    from evalledger.matrix import expand

    project = _project(tmp_path)
    spec = project.spec(reload=True)
    cells = expand(spec)
    assert invoke(project, "run").exit_code == 0
    text = (project.root / "dvc.yaml").read_text()
    edited = text.replace("    params:\n", "    params:\n    - conditions\n", 1)
    (project.root / "dvc.yaml").write_text(edited)
    assert write_entries(project, spec, cells) is None
    (project.root / "dvc.yaml").write_text(text)
    assert write_entries(project, spec, cells) == len(cells)
    dvc(project.root, "cache", "dir", "--local", str(tmp_path / "elsewhere"))
    assert write_entries(project, spec, cells) is None
    (project.root / "params.yaml").write_text(PARAMS.replace("n_items: 12", "n_items: 8"))
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    status = json.loads(dvc(project.root, "status", "--json").stdout)
    assert set(status) == {"prepare"}  # only the user stage: its output is in the old cache
    assert any((tmp_path / "elsewhere").rglob("*"))  # DVC used the configured cache


def test_predictions_are_one_copy_on_disk_and_old_versions_stay_whole(
    project: Project,
) -> None:
    import hashlib

    def cached(rel: str) -> Path:
        lock = (project.root / "dvc.lock").read_text()
        md5 = lock.split(f"path: {rel}\n", 1)[1].split("md5: ", 1)[1].split()[0]
        return project.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    rel = "predictions/noisy/arith.jsonl"
    assert invoke(project, "run").exit_code == 0
    first = cached(rel)
    work, obj = (project.root / rel).stat(), first.stat()
    assert (work.st_ino, work.st_nlink) == (obj.st_ino, 2)  # a hard link, not a copy
    assert obj.st_mode & 0o777 == 0o444
    old = first.read_bytes()
    assert invoke(project, "run", "-S", "models.noisy.seed=11").exit_code == 0
    second = cached(rel)
    assert second != first and (project.root / rel).stat().st_ino == second.stat().st_ino
    assert first.read_bytes() == old  # the new version was a new file, not a rewrite
    assert hashlib.md5(old).hexdigest() == first.parent.name + first.name
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}
