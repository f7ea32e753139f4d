"""Validation before anything runs: `run`, `sweep` and `cell` refuse bad input in one line.

Every case runs the real CLI on a copy of one git+DVC project whose six cells were all
evaluated and committed (so "nothing to run" is the state a typo used to hide behind).
Each must exit 2 with exactly one line on stderr, no traceback and no "internal error",
and leave params.yaml, dvc.yaml, dvc.lock, runs/, metrics/ and predictions/ byte-identical
(and, for a sweep, queue no DVC experiment).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import git, invoke, make_project
from evalledger.project import Project
from evalledger.secret_keys import is_secret_key

NO_KEY = "EVALLEDGER_VALIDATION_UNSET_KEY"
Setup = Callable[[Path], None]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed project (SMALL_PARAMS) whose six cells are all up to date."""
    project = make_project(tmp_path_factory.mktemp("template") / "proj")
    result = invoke(project, "run", "--commit")
    assert result.exit_code == 0, result.output
    return project.root


@pytest.fixture
def copy(evaluated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.delenv(NO_KEY, raising=False)
    root = tmp_path / "proj"
    shutil.copytree(evaluated, root, symlinks=True)
    return Project(root)


def _edit(old: str, new: str) -> Setup:
    def setup(root: Path) -> None:
        text = (root / "params.yaml").read_text()
        assert old in text
        (root / "params.yaml").write_text(text.replace(old, new))

    return setup


def _add_model(name: str, settings: str) -> Setup:
    """Put a new model on the model axis (its cells are then the ones to run)."""

    def setup(root: Path) -> None:
        _edit("model: [solver, noisy, adder]", f"model: [solver, noisy, adder, {name}]")(root)
        _edit("models:\n", f"models:\n  {name}: {settings}\n")(root)

    return setup


def _add_benchmark(name: str, settings: str) -> Setup:
    def setup(root: Path) -> None:
        _edit("benchmark: [arith, arith_hard]", f"benchmark: [arith, arith_hard, {name}]")(root)
        _edit("benchmarks:\n", f"benchmarks:\n  {name}: {settings}\n")(root)

    return setup


def _prompt_sets(template: str) -> Setup:
    def setup(root: Path) -> None:
        _edit("benchmark: [arith, arith_hard]\n",
              "benchmark: [arith, arith_hard]\n  prompt_set: [p]\n")(root)  # fmt: skip
        with (root / "params.yaml").open("a") as fh:
            fh.write(f"prompt_sets:\n  p: {{template: '{template}'}}\n")

    return setup


def _decodings(settings: str) -> Setup:
    def setup(root: Path) -> None:
        _edit("benchmark: [arith, arith_hard]\n",
              "benchmark: [arith, arith_hard]\n  decoding: [d]\n")(root)  # fmt: skip
        with (root / "params.yaml").open("a") as fh:
            fh.write(f"decodings:\n  d: {settings}\n")

    return setup


def _dvc_yaml(text: str | None) -> Setup:
    def setup(root: Path) -> None:
        if text is None:
            (root / "dvc.yaml").unlink()
        else:
            (root / "dvc.yaml").write_text(text)

    return setup


OPENAI = f"{{adapter: openai, base_url: 'http://127.0.0.1:9/v1', model: x, api_key_env: {NO_KEY}}}"
NOISY_RATE = "error_rate: 0.3"
SECRET = "sk-" + "Zq8vT2mN4kR7wX1yB5cD"

#: case -> (command line, the text its one line must hold, setup of the project first)
CASES: dict[str, tuple[list[str], str, Setup | None]] = {
    # -- unknown keys and entries, with did-you-mean ----------------------------------
    "run: unknown model entry": (
        ["run", "-S", "models.nosuch.x=1"],
        "unknown model 'nosuch' in -S models.nosuch.x=1; models: solver, noisy, adder", None),
    "run: entry near-miss": (
        ["run", "-S", "models.nosiy.seed=4"], "did you mean 'noisy'? models: solver", None),
    "run: unknown top-level key is no secret": (
        ["run", "-S", "nosuchkey=1"],
        "unknown key 'nosuchkey' in -S nosuchkey=1; top-level sections: axes, benchmarks", None),
    "run: top-level near-miss": (
        ["run", "-S", "model.noisy.seed=4"], "did you mean 'models'?", None),
    "run: unknown setting": (
        ["run", "-S", "models.noisy.eror_rate=0.1"],
        "models.noisy: unknown setting 'eror_rate'; known: max_concurrency", None),
    "run: setting near-miss": (
        ["run", "-S", "models.noisy.eror_rate=0.1"], "did you mean 'error_rate'?", None),
    "run: unknown setting of a model not selected": (
        ["run", "--models", "solver", "-S", "models.noisy.bogus=1"],
        "unknown setting 'bogus'", None),
    "run: unknown setting in params.yaml": (
        ["run", "--force", "--models", "noisy"], "unknown setting 'eror_rate'",
        _edit(NOISY_RATE, "eror_rate: 0.3")),
    "run: unknown run setting": (["run", "-S", "run.job=2"], "did you mean 'jobs'?", None),
    "run: unknown axis": (["run", "-S", "axes.flavour=[x]"], "no 'flavours:' section", None),
    "run: unknown axis value in -S": (
        ["run", "-S", "axes.model=[solver,nosuch]"],
        "unknown model 'nosuch' in axes.model; known: solver, noisy, adder", None),
    "run: unknown filter value": (
        ["run", "--models", "nosuch"], "unknown model 'nosuch'; known: solver, noisy, adder", None),
    "run: unknown filter axis value": (
        ["run", "--benchmarks", "arith,gsm"], "unknown benchmark 'gsm'", None),
    "run: unknown adapter": (
        ["run", "-S", "models.adder.adapter=nope"], "unknown model adapter 'nope'", None),
    "run: unknown scorer": (
        ["run", "-S", "benchmarks.arith.scorer=nope"], "unknown scorer 'nope'", None),
    "run: an entry replaced by a scalar": (
        ["run", "-S", "models.noisy=5"], "models.noisy must be a mapping of settings", None),
    "run: bad override": (["run", "-S", "models.noisy.seed"], "bad override", None),
    # -- ranges --------------------------------------------------------------------
    "run: negative count": (
        ["run", "-S", "benchmarks.arith.n_items=-5"],
        "-S benchmarks.arith.n_items=-5: Input should be greater than or equal to 1", None),
    "run: zero count": (
        ["run", "-S", "benchmarks.arith.n_items=0"], "greater than or equal to 1", None),
    "run: rate above 1 in -S": (
        ["run", "-S", "models.noisy.error_rate=7"], "less than or equal to 1", None),
    "run: negative rate": (
        ["run", "-S", "models.noisy.error_rate=-0.1"], "greater than or equal to 0", None),
    "run: rate above 1 in params.yaml": (
        ["run"], "models.noisy.error_rate: Input should be less than or equal to 1, got 1.5",
        _edit(NOISY_RATE, "error_rate: 1.5")),
    "run: zero concurrency": (
        ["run", "-S", "models.solver.max_concurrency=0"], "greater than or equal to 1", None),
    "run: negative price": (
        ["run", "-S", "models.solver.price.input=-1"], "greater than or equal to 0", None),
    "run: negative limit": (
        ["run", "-S", "benchmarks.arith.limit=-1"], "greater than or equal to 1", None),
    "run: negative jobs in -S": (
        ["run", "-S", "run.jobs=-1"], "run.jobs must be a positive integer, got -1", None),
    "run: zero jobs in params.yaml": (
        ["run"], "run.jobs must be a positive integer, got 0", _edit("jobs: 3", "jobs: 0")),
    "run: negative tolerance of a scorer": (
        ["run", "-S", "benchmarks.arith.scorer={name: numeric, rel_tol: -1}"],
        "greater than or equal to 0", None),
    "run: negative temperature of a decoding": (
        ["run"], "decodings.d.temperature: Input should be greater than or equal to 0",
        _decodings("{temperature: -1}")),
    # -- types -----------------------------------------------------------------------
    "run: a word for a rate": (
        ["run", "-S", "models.noisy.error_rate=abc"], "valid number", None),
    "run: a word for a count": (
        ["run", "-S", "benchmarks.arith.n_items=many"], "valid integer", None),
    "run: a choice not among the choices": (
        ["run", "-S", "models.adder.strategy=guess"], "Input should be 'solver' or 'adder'", None),
    "run: a word for jobs in run:": (
        ["run"], "run.jobs must be a positive integer, got 'two'", _edit("jobs: 3", "jobs: two")),
    "run: run: not a mapping": (
        ["run"], "'run:' in params.yaml must be a mapping", _edit("run:\n  jobs: 3", "run: 4")),
    "run: a bad regex": (
        ["run", "-S", "benchmarks.arith.scorer={name: regex, pattern: '('}"],
        "invalid regular expression", None),
    "run: a callable that is not module:function": (
        ["run"], "must be 'package.module:function'",
        _add_model("mine", "{adapter: python, callable: nocolon}")),
    "run: a prompt template without {input}": (
        ["run"], "prompt_sets.p.template: Value error, the template must contain {input}",
        _prompt_sets("Answer briefly.")),
    # -- secrets still refused -----------------------------------------------------------
    "run: a secret's name": (
        ["run", "-S", "models.noisy.api_key=abc123"],
        "params.yaml holds a secret at models.noisy.api_key", None),
    "run: a secret's value": (
        ["run", "-S", f"models.noisy.note={SECRET}"],
        "params.yaml holds a secret at models.noisy.note", None),
    # -- plugins built before the first cell: keys, imports ------------------------------
    "run: API key not set": (
        ["run", "--force"], f"models.gpt.api_key_env names {NO_KEY}, which is not set",
        _add_model("gpt", OPENAI)),
    "run: callable does not import": (
        ["run", "--force"], "cannot be imported",
        _add_model("mine", "{adapter: python, callable: evalledger_no_such_mod:answer}")),
    "run: a loader's settings": (
        ["run"], "benchmarks.files.path: String should have at least 1 character",
        _add_benchmark("files", "{loader: jsonl, path: ''}")),
    "run: dry run sees the missing key": (
        ["run", "--dry-run"], "which is not set", _add_model("gpt", OPENAI)),
    # -- dvc.yaml ---------------------------------------------------------------------
    "run: dvc.yaml not YAML, nothing to run": (
        ["run"], "invalid YAML in dvc.yaml", _dvc_yaml("stages: [\n")),
    "run: dvc.yaml stages not a mapping": (
        ["run", "--models", "solver"], "dvc.yaml: stages must be a mapping",
        _dvc_yaml("stages: 3\n")),
    "run: resume refuses -S": (
        ["run", "--resume", "-S", "models.noisy.seed=1"], "-S is not allowed", None),
    # -- sweep: every grid point checked before anything is queued -------------------------
    "sweep: words for a rate": (
        ["sweep", "-S", "models.noisy.error_rate=abc,def"],
        "-S models.noisy.error_rate=abc: Input should be a valid number", None),
    "sweep: one bad point of many": (
        ["sweep", "-S", "models.noisy.error_rate=0.1,0.5,7"],
        "-S models.noisy.error_rate=7: Input should be less than or equal to 1", None),
    "sweep: a bad point of a grid": (
        ["sweep", "-S", "models.noisy.seed=1,2", "-S", "benchmarks.arith.n_items=10,-1"],
        "-S benchmarks.arith.n_items=-1: Input should be greater than or equal to 1", None),
    "sweep: unknown entry": (
        ["sweep", "-S", "models.nosuch.x=1,2"], "unknown model 'nosuch' in -S models.nosuch.x",
        None),
    "sweep: unknown top-level key": (
        ["sweep", "-S", "nosuchkey=1,2"], "unknown key 'nosuchkey' in -S nosuchkey", None),
    "sweep: an added setting the adapter does not know": (
        ["sweep", "-S", "+models.noisy.note=1,2"], "unknown setting 'note'", None),
    "sweep: dvc.yaml missing": (
        ["sweep", "-S", "models.noisy.seed=1,2"],
        "dvc.yaml is missing, so the experiments would fail", _dvc_yaml(None)),
    "sweep --run: dvc.yaml missing": (
        ["sweep", "--run", "-S", "models.noisy.seed=1,2"], "dvc.yaml is missing",
        _dvc_yaml(None)),
    "sweep: dvc.yaml out of sync": (
        ["sweep", "-S", "models.noisy.seed=1,2"], "stage does not match the axes in params.yaml",
        _prompt_sets("Q: {input}")),
    "sweep: dvc.yaml not YAML": (
        ["sweep", "-S", "models.noisy.seed=1,2"], "invalid YAML in dvc.yaml",
        _dvc_yaml("stages: [\n")),
    "sweep: API key not set": (
        ["sweep", "-S", "models.noisy.seed=1,2"], "which is not set",
        _add_model("gpt", OPENAI)),
    # -- cell: the command of each dvc.yaml stage ----------------------------------------
    "cell: unknown model": (
        ["cell", "model=nosuch", "benchmark=arith"],
        "unknown model 'nosuch'; known: solver, noisy, adder", None),
    "cell: unknown axis": (
        ["cell", "model=solver", "benchmark=arith", "prompt_set=p"],
        "the matrix has no axis 'prompt_set'", None),
    "cell: not axis=value": (["cell", "solver"], "bad cell argument 'solver'", None),
    "cell: rate above 1": (
        ["cell", "model=noisy", "benchmark=arith"], "less than or equal to 1",
        _edit(NOISY_RATE, "error_rate: 1.5")),
    "cell: a negative count": (
        ["cell", "model=solver", "benchmark=arith"], "greater than or equal to 1",
        _edit("n_items: 30", "n_items: -5")),
    "cell: API key not set": (
        ["cell", "model=gpt", "benchmark=arith"], "which is not set",
        _add_model("gpt", OPENAI)),
    "cell: dvc.yaml missing": (
        ["cell", "model=solver", "benchmark=arith"],
        "dvc.yaml is missing, so DVC cannot record this cell", _dvc_yaml(None)),
    "cell: dvc.yaml not YAML": (
        ["cell", "model=solver", "benchmark=arith"], "invalid YAML in dvc.yaml",
        _dvc_yaml("stages: [\n")),
}  # fmt: skip

WATCHED = ["params.yaml", "dvc.yaml", "dvc.lock", "runs", "metrics", "predictions"]


def _tree_hash(root: Path) -> dict[str, str]:
    """Path -> sha256 of every watched file (a missing one is recorded as such)."""
    out: dict[str, str] = {}
    for name in WATCHED:
        top = root / name
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in files:
            rel = path.relative_to(root).as_posix()
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "-"
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(copy: Project, case: str) -> None:
    args, expected, setup = CASES[case]
    if setup is not None:
        setup(copy.root)
    before = _tree_hash(copy.root)
    refs = git(copy.root, "for-each-ref", "refs/exps", "refs/heads", "refs/tags")
    result = invoke(copy, *args)
    assert result.exit_code == 2, (case, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, (case, result.stderr)
    assert lines[0].startswith("Error: ") and expected in lines[0], (case, lines[0])
    for bad in ("Traceback", "internal error"):
        assert bad not in result.output
    assert SECRET not in result.output and "abc123" not in result.output.replace(expected, "")
    assert _tree_hash(copy.root) == before, case
    assert git(copy.root, "for-each-ref", "refs/exps", "refs/heads", "refs/tags") == refs


def test_unknown_key_is_not_called_a_secret(copy: Project) -> None:
    out = invoke(copy, "run", "-S", "nosuchkey=1")
    assert "secret" not in out.output
    assert "sort_key" not in out.output  # sanity: the message is about the key given
    assert not is_secret_key("nosuchkey") and not is_secret_key("sort_key")
    assert not is_secret_key("api_key_env") and not is_secret_key("max_tokens")
    for name in (
        "api_key",
        "apiKey",
        "OPENAI_API_KEY",
        "hf_token",
        "authToken",
        "password",
        "DB_PASSWORD",
        "client_secret",
        "secret",
        "access_key",
        "Authorization",
    ):
        assert is_secret_key(name), name


def test_a_run_with_nothing_to_run_regenerates_a_missing_dvc_yaml(copy: Project) -> None:
    # Not bad input: the eval stage is derived from params.yaml, so `run` writes it back.
    wanted = copy.dvc_yaml.read_text()
    copy.dvc_yaml.unlink()
    out = invoke(copy, "run")
    assert out.exit_code == 0, out.output
    assert "dvc.yaml is missing; regenerated it from params.yaml" in out.stderr
    assert "all 6 selected cells are up to date" in out.stdout
    assert copy.dvc_yaml.read_text() == wanted
    dry = invoke(copy, "run", "--dry-run")  # read-only, and nothing left to say
    assert dry.exit_code == 0 and dry.stderr == ""


def test_a_new_entry_on_the_axis_in_the_same_overrides_is_accepted(copy: Project) -> None:
    out = invoke(copy, "run", "--dry-run", "-S", "models.extra.adapter=baseline",
                 "-S", "axes.model=[solver,extra]")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "2 cells to evaluate" in out.stdout


def test_valid_overrides_still_run_and_are_written(copy: Project) -> None:
    out = invoke(copy, "run", "--models", "noisy", "-S", "models.noisy.error_rate=1")
    assert out.exit_code == 0, out.output
    assert "error_rate: 1, seed: 3}" in copy.params_path.read_text()
