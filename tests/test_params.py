from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import invoke
from evalledger.project import Project


def _files(project: Project) -> set[str]:
    return {
        str(p.relative_to(project.root))
        for p in project.root.rglob("*")
        if ".git" not in p.parts and ".dvc" not in p.parts
    }


BAD = {
    "yaml syntax": ("axes:\n  model: [solver\n", "invalid YAML in params.yaml line"),
    "unknown axis": (
        "axes:\n  model: [m]\n  benchmark: [b]\n  flavour: [x]\n"
        "models: {m: {adapter: baseline}}\nbenchmarks: {b: {loader: arith}}\n",
        "axes.flavour lists x, but params.yaml has no 'flavours:' section",
    ),
    "empty axis": (
        "axes:\n  model: []\n  benchmark: [b]\nbenchmarks: {b: {loader: arith}}\n",
        "empty matrix: axes.model has no values",
    ),
    "no axes": ("models: {}\n", "params.yaml has no 'axes:' mapping"),
    "missing benchmark axis": (
        "axes:\n  model: [m]\nmodels: {m: {adapter: baseline}}\n",
        "empty matrix: params.yaml has no axes.benchmark",
    ),
    "unknown model": (
        "axes:\n  model: [gtp4]\n  benchmark: [b]\n"
        "models: {gpt4: {adapter: baseline}, llama3: {adapter: baseline}}\n"
        "benchmarks: {b: {loader: arith}}\n",
        "unknown model 'gtp4' in axes.model; known: gpt4, llama3",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_params_is_one_line_exit_2_and_writes_nothing(project: Project, case: str) -> None:
    text, expected = BAD[case]
    project.params_path.write_text(text)
    before = _files(project)
    dvc_yaml = project.dvc_yaml.read_text()
    result = invoke(project, "run")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and expected in lines[0]
    assert _files(project) == before
    assert project.dvc_yaml.read_text() == dvc_yaml


def test_bad_params_in_a_real_process_has_no_traceback(project: Project) -> None:
    project.params_path.write_text("axes: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "evalledger", "run"],
        cwd=project.root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().count("\n") == 0 and "invalid YAML" in proc.stderr


def test_unknown_adapter_lists_known_ones(project: Project) -> None:
    text = project.params_path.read_text().replace(
        "adapter: baseline, strategy: adder", "adapter: nope"
    )
    project.params_path.write_text(text)
    result = invoke(project, "run", "--models", "adder")
    # checked before any execution is created: one line, exit 2, nothing written
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: unknown model adapter 'nope' in models.adder.adapter; known: baseline, "
        "openai, python; fix the name, or install the package that provides model adapter "
        "'nope'"
    )
    assert not list(project.runs_dir.glob("exec_*"))


def test_unknown_setting_is_named(project: Project) -> None:
    text = project.params_path.read_text().replace("error_rate: 0.3", "eror_rate: 0.3")
    project.params_path.write_text(text)
    result = invoke(project, "run", "--models", "noisy")
    assert result.exit_code == 2
    expected = (
        "models.noisy: unknown setting 'eror_rate'; "
        "known: max_concurrency, price, resources, strategy"
    )
    assert expected in result.output and result.output.count("\n") == 1


def test_unknown_filter_value_lists_choices(project: Project) -> None:
    result = invoke(project, "run", "--models", "gtp4")
    assert result.exit_code == 2
    assert "unknown model 'gtp4'; known: solver, noisy, adder" in result.output


def test_duplicate_keys_are_rejected_like_dvc_does(project: Project) -> None:
    text = project.params_path.read_text().replace(
        "adapter: baseline, strategy: adder", "adapter: baseline, strategy: adder, strategy: x"
    )
    project.params_path.write_text(text)
    result = invoke(project, "run")
    assert result.exit_code == 2
    assert "invalid YAML in params.yaml line 8: duplicate key 'strategy'" in result.output


def test_unknown_nested_setting_lists_the_nested_fields(project: Project) -> None:
    text = project.params_path.read_text().replace(
        "adapter: baseline, strategy: adder",
        "adapter: baseline, strategy: adder, price: {input: 1, outptu: 2}",
    )
    project.params_path.write_text(text)
    result = invoke(project, "run", "--models", "adder")
    assert result.exit_code == 2
    assert "models.adder: unknown setting 'price.outptu'; known: input, output" in result.output


def test_axis_values_cannot_start_with_an_underscore() -> None:
    # metrics/_<name>/ folders are reserved (saved significance results, series).
    from evalledger.errors import ConfigError
    from evalledger.params import parse_spec

    data = {
        "axes": {"model": ["_hidden"], "benchmark": ["b"]},
        "models": {"_hidden": {"adapter": "baseline"}},
        "benchmarks": {"b": {"loader": "arith"}},
    }
    with pytest.raises(ConfigError) as err:
        parse_spec(data)
    assert "model name '_hidden' is not allowed" in err.value.one_line()
    assert "start with a letter or digit" in err.value.one_line()


def test_own_sections_are_allowed_and_near_misses_refused() -> None:
    from evalledger.errors import ConfigError
    from evalledger.params import parse_spec

    base = {
        "axes": {"model": ["m"], "benchmark": ["b"]},
        "models": {"m": {"adapter": "baseline"}},
        "benchmarks": {"b": {"loader": "arith"}},
    }
    spec = parse_spec({**base, "train": {"lr": 0.1, "epochs": 3}})  # a training stage's knobs
    assert spec.raw["train"] == {"lr": 0.1, "epochs": 3}
    with pytest.raises(ConfigError) as err:
        parse_spec({**base, "benchmark": {}})
    assert err.value.one_line().startswith(
        "unknown section 'benchmark' in params.yaml; did you mean 'benchmarks'?"
    )
