"""``evalledger revert``: params.yaml back to an execution's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SMALL_PARAMS, invoke, make_project
from evalledger.atomic import locked_file
from evalledger.errors import ConfigError
from evalledger.execution.executions import execution_ids, load_execution
from evalledger.execution.revert import MISSING, ParamChange, revert_params
from evalledger.manifest import dump_manifest
from evalledger.params import load_params
from evalledger.project import Project
from evalledger.redact import REDACTED

NOISY = "  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}\n"
SECRET_PARAMS = (
    SMALL_PARAMS
    + """\
judges:
  grader:
    adapter: openai
    base_url: http://127.0.0.1:9/v1   # once had a password in it
    model: judge
"""
)


def _edit(project: Project, old: str, new: str) -> None:
    text = project.params_path.read_text()
    assert old in text
    project.params_path.write_text(text.replace(old, new))


def _run(project: Project, *args: str) -> str:
    result = invoke(project, "run", *args)
    assert result.exit_code == 0, result.output
    return load_execution(project, None).execution_id


def test_revert_restores_the_config_keeps_comments_and_reruns(project: Project) -> None:
    first = _run(project)
    old = load_execution(project, first)
    # another configuration: a model setting changed, one removed, a model added,
    # a comment elsewhere; evaluated and recorded
    _edit(project, NOISY, "  noisy: {adapter: baseline, strategy: solver, error_rate: 0.1}\n"
                          "  extra: {adapter: baseline, strategy: adder}  # try me\n")  # fmt: skip
    _edit(project, "run:\n", "# how to run\nrun:  # settings of evalledger run\n")
    _edit(project, "model: [solver, noisy, adder]", "model: [solver, noisy, adder, extra]")
    _run(project)

    result = invoke(project, "revert", first[-8:])
    assert result.exit_code == 0, result.output
    assert load_params(project.params_path) == old.config
    text = project.params_path.read_text()
    assert "# how to run\nrun:  # settings of evalledger run\n" in text
    assert text.startswith("# small demo matrix for tests\n")
    assert NOISY in text  # the removed key is back in its place, flow style kept
    assert "extra" not in text
    assert "  model: [solver, noisy, adder]\n" in text  # a replaced list keeps its style
    lines = result.output.splitlines()
    assert lines[0] == f"params.yaml: 4 key(s) changed to match {first}:"
    assert "  models.noisy.error_rate: 0.1 -> 0.3" in lines
    assert "  models.noisy.seed: (absent) -> 3" in lines
    assert '  models.extra: {"adapter": "baseline", "strategy": "adder"} -> (absent)' in lines
    assert '  axes.model: ["solver", "noisy", "adder", "extra"] -> ' in "\n".join(lines)
    assert lines[-1] == (
        "next: `evalledger run` evaluates 2 cell(s): noisy/arith, noisy/arith_hard"
    )
    # the changed cells are stale again, and a run evaluates exactly them
    third = _run(project)
    rerun = load_execution(project, third)
    assert list(rerun.cells) == ["noisy/arith", "noisy/arith_hard"]
    for key, rec in rerun.cells.items():
        assert rec.config_hash == old.cells[key].config_hash
        assert rec.status.value == "completed"
    assert rerun.config == old.config
    assert invoke(project, "revert", first).output.startswith("params.yaml already matches")


def test_dry_run_writes_nothing(project: Project) -> None:
    first = _run(project)
    _edit(project, "n_items: 30", "n_items: 10")
    before = project.params_path.read_bytes()
    dvc_yaml = project.dvc_yaml.read_bytes()
    result = invoke(project, "revert", first, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "params.yaml: 1 key(s) would change" in result.output
    assert "  benchmarks.arith.n_items: 10 -> 30" in result.output
    assert "dry run: params.yaml not written" in result.output
    assert project.params_path.read_bytes() == before
    assert project.dvc_yaml.read_bytes() == dvc_yaml


def test_redacted_values_keep_the_current_value(tmp_path: Path) -> None:
    # params.yaml can no longer hold a secret (it is refused), but a manifest written when
    # judges.grader.base_url carried a password holds that value redacted.
    project = make_project(tmp_path / "proj", SECRET_PARAMS)
    first = _run(project)
    manifest = load_execution(project, first)
    manifest.config["judges"]["grader"]["base_url"] = REDACTED
    path = project.runs_dir / first / "manifest.yaml"
    path.write_text(dump_manifest(manifest))
    _edit(project, "n_items: 20", "n_items: 5")
    result = invoke(project, "revert", first)
    assert result.exit_code == 0, result.output
    text = project.params_path.read_text()
    assert "base_url: http://127.0.0.1:9/v1   # once had a password in it" in text
    assert REDACTED not in text
    assert "kept the current value of redacted judges.grader.base_url" in result.output
    assert "n_items: 20" in text
    # no current value to keep: a one-line error naming the key, nothing written
    _edit(project, "    base_url: http://127.0.0.1:9/v1   # once had a password in it\n", "")
    _edit(project, "n_items: 20", "n_items: 5")
    before = project.params_path.read_bytes()
    failed = invoke(project, "revert", first)
    assert failed.exit_code == 2
    assert failed.output.count("\n") == 1
    assert failed.output.startswith(
        f"Error: judges.grader.base_url was redacted in {first} and params.yaml has no "
        "current value for it; set judges.grader.base_url in params.yaml"
    )
    assert project.params_path.read_bytes() == before


def test_unknown_execution_is_a_usage_error_with_close_matches(project: Project) -> None:
    first = _run(project)
    typo = first[:-1] + ("0" if first[-1] != "0" else "1")
    result = invoke(project, "revert", typo)
    assert result.exit_code == 2
    assert result.output == (f"Error: unknown execution {typo!r}; did you mean {first}?\n")
    assert execution_ids(project) == [first]


def test_revert_library_api_and_refusals(project: Project) -> None:
    first = _run(project)
    manifest = load_execution(project, first)
    _edit(project, "jobs: 3", "jobs: 2")
    result = revert_params(project, manifest, dry_run=True)
    assert result.changes == [ParamChange("run.jobs", 2, 3)]
    assert result.changes[0].kind == "changed"
    assert ParamChange("a", MISSING, 1).kind == "added"
    assert ParamChange("a", 1, MISSING).kind == "removed"
    assert not result.written
    assert result.stale_cells == []  # jobs is not part of any cell's configuration
    assert "jobs: 3" in result.text
    # a snapshot that is not a valid matrix today is refused before writing
    bad = manifest.model_copy(update={"config": {**manifest.config, "modles": {}}})
    with pytest.raises(ConfigError, match="is not valid today: unknown section 'modles'"):
        revert_params(project, bad)
    assert "jobs: 2" in project.params_path.read_text()
    # not while a run holds the project's run lock
    with locked_file(project.run_lock_path) as fh:
        assert fh is not None
        locked = invoke(project, "revert", first)
    assert locked.exit_code == 4
    assert "an evalledger run is in progress" in locked.output
    assert revert_params(project, manifest).written
    assert "jobs: 3" in project.params_path.read_text()
