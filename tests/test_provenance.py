"""Provenance capture (machine, packages, data versions, environment) and secret redaction."""

from __future__ import annotations

import getpass
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from conftest import dvc, git, invoke, make_project
from evalledger import provenance
from evalledger.execution.executions import load_execution
from evalledger.gitinfo import git_diff_hash, git_state
from evalledger.project import Project
from evalledger.provenance import capture_provenance, data_versions, selected_env
from evalledger.redact import (
    REDACTED,
    contains_secret,
    is_secret_name,
    redact,
    redact_command,
    redact_text,
)

# Planted secrets: none of these strings may reach any file evalledger writes.
OPENAI = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
ANTHROPIC = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
GITHUB = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
PASSWORD = "correct-horse-battery-staple"  # no token pattern: only its name gives it away
WANDB = "0123456789abcdef0123456789abcdef01234567"  # 40 hex: only the name gives it away
CUSTOM = "sk-custom-9z8y7x6w5v4u3t2s1r0q"  # under a harmless name: only its value
PROXY_PW = "pr0xy-pa55w0rd"
URL_PW = "u5er-pa55w0rd"
PARAMS_KEY = "sk-params-1a2b3c4d5e6f7a8b9c0d"
OVERRIDE_TOKEN = "ghp_overrideoverrideoverride0123456789"
ENV_SECRETS = [OPENAI, ANTHROPIC, HF, GITHUB, PASSWORD, WANDB, CUSTOM, PROXY_PW]
#: Secrets the user wrote into params.yaml (by hand or with -S): DVC's dvc.lock records
#: the params of each stage verbatim (as `dvc repro` would), so they are checked
#: everywhere but there and in params.yaml itself.
PARAMS_SECRETS = [PARAMS_KEY, URL_PW, OVERRIDE_TOKEN]


# -- values captured ---------------------------------------------------------------------


def test_captures_the_real_machine_python_and_packages(project: Project) -> None:
    before = datetime.now(UTC)
    p = capture_provenance(project.root)
    assert before <= p.captured_at <= datetime.now(UTC)
    assert p.python == platform.python_version()
    assert p.hostname == socket.gethostname()
    assert p.user == getpass.getuser()
    assert p.os == platform.platform()
    assert p.executable == sys.executable
    assert p.cpu_count == os.cpu_count()
    assert p.cpu
    assert p.memory_bytes and p.memory_bytes > 2**20
    assert p.packages["evalledger"] == importlib.metadata.version("evalledger")
    for name in ("pydantic", "pyyaml", "dvc", "ruamel-yaml"):  # canonical names
        assert p.packages[name] == importlib.metadata.version(name), name
    assert len(p.packages) > 20
    assert p.data == {}  # nothing DVC-tracked yet (generated benchmarks)


def test_capture_is_fast(project: Project) -> None:
    capture_provenance(project.root)
    started = time.perf_counter()
    capture_provenance(project.root)
    # The budget is 150 ms; leave room for a loaded CI machine.
    assert time.perf_counter() - started < 1.0


def test_data_versions_from_dvc_add_and_dvc_lock(project: Project) -> None:
    root = project.root
    data = b'{"id": "q-0", "input": "1+1", "target": "2"}\n'
    (root / "data.jsonl").write_bytes(data)
    (root / "corpus").mkdir()
    (root / "corpus" / "a.txt").write_text("a\n")
    dvc(root, "add", "data.jsonl", "corpus")
    versions = data_versions(root)
    assert versions["data.jsonl"] == hashlib.md5(data).hexdigest()
    meta = yaml.safe_load((root / "corpus.dvc").read_text())
    assert versions["corpus"] == meta["outs"][0]["md5"] and versions["corpus"].endswith(".dir")
    # Editing the data and re-adding it changes its version.
    (root / "data.jsonl").write_bytes(data * 2)
    dvc(root, "add", "data.jsonl")
    assert data_versions(root)["data.jsonl"] == hashlib.md5(data * 2).hexdigest()
    # dvc.lock: dependencies with their md5 count, params and outputs do not.
    stage = {
        "cmd": "python prep.py",
        "deps": [{"path": "raw/items.csv", "hash": "md5", "md5": "a" * 32, "size": 3}],
        "params": {"params.yaml": {"seed": 1}},
        "outs": [{"path": "prepared.csv", "hash": "md5", "md5": "b" * 32, "size": 3}],
    }
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prep": stage}}))
    versions = data_versions(root)
    assert versions["raw/items.csv"] == "a" * 32
    assert "prepared.csv" not in versions and "seed" not in versions
    assert capture_provenance(root).data == versions


def test_diff_hash_is_none_when_clean_and_follows_edits(project: Project) -> None:
    root = project.root
    assert git_diff_hash(root) is None
    assert git_state(root).diff_hash is None
    (root / "untracked.txt").write_text("new\n")
    assert git_diff_hash(root) is None  # untracked files are not part of the diff

    params = project.params_path.read_text()
    project.params_path.write_text(params + "# one\n")
    first = git_diff_hash(root)
    patch = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=root,
                           capture_output=True, check=True).stdout  # fmt: skip
    assert first == hashlib.sha256(patch).hexdigest()[:16]
    state = git_state(root)
    assert state.dirty and state.diff_hash == first

    project.params_path.write_text(params + "# two\n")
    second = git_diff_hash(root)
    assert second and second != first
    git(root, "add", "params.yaml")  # staged changes count the same
    assert git_diff_hash(root) == second

    project.params_path.write_text(params)
    git(root, "add", "params.yaml")
    assert git_diff_hash(root) is None


def test_diff_hash_outside_git_and_before_the_first_commit(tmp_path: Path) -> None:
    assert git_diff_hash(tmp_path) is None
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    assert git_diff_hash(tmp_path) is None
    git(tmp_path, "add", "a.txt")
    assert git_diff_hash(tmp_path) is not None
    assert git_state(tmp_path).diff_hash == git_diff_hash(tmp_path)


def test_accelerators_from_nvidia_smi_without_importing_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1234-abcd)"\n'
        'echo "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-5678-ef01)"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(provenance, "_NVIDIA_PROC", tmp_path / "no-driver")
    gpus = provenance.detect_accelerators()
    assert gpus[:2] == ["GPU 0: NVIDIA A100-SXM4-80GB", "GPU 1: NVIDIA A100-SXM4-80GB"]
    assert "torch" not in sys.modules or "torch" in _preloaded


_preloaded = set(sys.modules)


# -- redaction rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["OPENAI_API_KEY", "HF_TOKEN", "MY_PASSWORD", "WANDB_API_KEY", "GITHUB_TOKEN", "DB_PASSWD",
     "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "HF_AUTH", "APIKEY", "MYTOKEN",
     "api_key", "apiKey", "accessToken", "client_secret", "password", "Authorization",
     "secrets"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["max_tokens", "TOKENIZERS_PARALLELISM", "tokenizer", "api_key_env", "api_key_header",
     "token_var", "CUDA_VISIBLE_DEVICES", "author", "keywords", "PYTHONHASHSEED", "passes"],
)  # fmt: skip
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "value",
    [OPENAI, ANTHROPIC, HF, GITHUB, "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
     "gho_0123456789abcdefghijAB", "xoxb-1234567890-abcdefghij", "AKIAIOSFODNN7EXAMPLE",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     f"Bearer {PASSWORD}", f"x-header: Bearer {WANDB}", f"key={OPENAI}"],
)  # fmt: skip
def test_token_values(value: str) -> None:
    assert contains_secret(value)
    assert redact(value) == REDACTED
    hidden = redact_text(value)
    assert REDACTED in hidden
    for part in (OPENAI, ANTHROPIC, HF, GITHUB, PASSWORD, WANDB):
        assert part not in hidden


@pytest.mark.parametrize(
    "value",
    ["gpt-4o-mini", "The answer is 42.", "risk-adjusted-performance-metric",
     "https://api.openai.com/v1", "0123456789abcdef0123456789abcdef01234567", "sk-short",
     "Answer with one token followed by a newline"],
)  # fmt: skip
def test_harmless_values(value: str) -> None:
    assert not contains_secret(value)
    assert redact(value) == value == redact_text(value)


def test_url_passwords_are_redacted_and_the_rest_kept() -> None:
    url = f"https://alice:{URL_PW}@models.example.com:8443/v1?x=1"
    assert redact_text(url) == f"https://alice:{REDACTED}@models.example.com:8443/v1?x=1"
    assert redact_text("http://proxy:3128") == "http://proxy:3128"
    assert redact_text("postgres://bob:pw@db/x") == f"postgres://bob:{REDACTED}@db/x"
    # In a config snapshot the whole value goes, so `evalledger revert` restores it.
    assert redact({"base_url": url}) == {"base_url": REDACTED}


def test_redact_config_dicts() -> None:
    config = {
        "models": {
            "gpt": {"adapter": "openai", "api_key_env": "OPENAI_API_KEY", "max_tokens": 256,
                    "api_key_header": "Authorization", "api_key": "plain-but-named",
                    "headers": {"Authorization": "Basic dXNlcjpwYXNz", "X-Trace": "1"},
                    "options": {"token": 1234, "use_auth": True, "auth": "",
                                "list": [OPENAI, "fine"]}},
        },
        "n": 3,
    }  # fmt: skip
    out = redact(config)
    gpt = out["models"]["gpt"]
    assert gpt["api_key_env"] == "OPENAI_API_KEY" and gpt["max_tokens"] == 256
    assert gpt["api_key_header"] == "Authorization"
    assert gpt["api_key"] == REDACTED
    assert gpt["headers"] == {"Authorization": REDACTED, "X-Trace": "1"}
    assert gpt["options"] == {"token": REDACTED, "use_auth": True, "auth": "",
                              "list": [REDACTED, "fine"]}  # fmt: skip
    assert out["n"] == 3
    assert config["models"]["gpt"]["api_key"] == "plain-but-named"  # a copy


def test_redact_command_lines() -> None:
    argv = ["evalledger", "run", "-S", f"models.m.options.api_key={PASSWORD}", "--token",
            PASSWORD, f"--password={PASSWORD}", "-S", "models.m.seed=3",
            f"--note={OPENAI}"]  # fmt: skip
    out = redact_command(argv)
    assert out == ["evalledger", "run", "-S", f"models.m.options.api_key={REDACTED}",
                   "--token", REDACTED, f"--password={REDACTED}", "-S", "models.m.seed=3",
                   f"--note={REDACTED}"]  # fmt: skip


def test_selected_env_allow_list_and_redaction() -> None:
    env = {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "OPENAI_API_KEY": OPENAI,
        "OPENAI_BASE_URL": f"https://bob:{URL_PW}@llm.internal/v1",
        "HF_TOKEN": HF,
        "HF_HOME": "/data/hf",
        "WANDB_API_KEY": WANDB,
        "EVALLEDGER_CUSTOM": CUSTOM,  # allowed name, token-looking value
        "CUSTOM_VAR": CUSTOM,  # not allowed: not recorded at all
        "MY_PASSWORD": PASSWORD,  # not allowed
        "HTTPS_PROXY": f"http://me:{PROXY_PW}@proxy:3128",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SLURM_JOB_ID": "42",
        "EVALLEDGER_PROVENANCE_ENV": "MY_PASSWORD, TEAM_",
        "TEAM_NAME": "evals",
        "TEAM_SECRET": PASSWORD,
    }
    out = selected_env(env)
    assert out == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "EVALLEDGER_CUSTOM": REDACTED,
        "EVALLEDGER_PROVENANCE_ENV": "MY_PASSWORD, TEAM_",
        "HF_HOME": "/data/hf",
        "HF_TOKEN": REDACTED,
        "HTTPS_PROXY": f"http://me:{REDACTED}@proxy:3128",
        "MY_PASSWORD": REDACTED,
        "OPENAI_API_KEY": REDACTED,
        "OPENAI_BASE_URL": f"https://bob:{REDACTED}@llm.internal/v1",
        "SLURM_JOB_ID": "42",
        "TEAM_NAME": "evals",
        "TEAM_SECRET": REDACTED,
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_API_KEY": REDACTED,
    }


# -- end to end: nothing planted leaks into any file ----------------------------------------

LEAKY_MODEL = """\
import os


def generate(prompt, item, base_url=None):
    assert base_url and os.environ["OPENAI_API_KEY"]  # the model does get its settings
    return f"The answer is {item.target}."
"""


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts]


def test_run_writes_no_planted_secret_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "OPENAI_API_KEY": OPENAI,
        "ANTHROPIC_API_KEY": ANTHROPIC,
        "HF_TOKEN": HF,
        "MY_PASSWORD": PASSWORD,
        "WANDB_API_KEY": WANDB,
        "GITHUB_TOKEN": GITHUB,
        "CUSTOM_VAR": CUSTOM,  # not allow-listed
        "EVALLEDGER_CUSTOM": CUSTOM,  # allow-listed, caught by its value
        "EVALLEDGER_PROVENANCE_ENV": "MY_PASSWORD",  # allow-listed, caught by its name
        "HTTPS_PROXY": f"http://me:{PROXY_PW}@proxy:3128",
        "EVALLEDGER_NOTE": "hello",
    }.items():
        monkeypatch.setenv(name, value)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "leaky_model.py").write_text(LEAKY_MODEL)
    params = textwrap.dedent(f"""\
        axes:
          model: [leaky]
          benchmark: [arith]
        models:
          leaky:
            adapter: python
            callable: leaky_model:generate
            path: {model_dir}
            options:
              base_url: https://models.example.com/v1
        benchmarks:
          arith: {{loader: arith, n_items: 5, seed: 1, difficulty: easy}}
        """)
    project = make_project(tmp_path / "proj", params)
    result = invoke(project, "run", "-S", "models.leaky.options.base_url=https://other.example/v1")
    assert result.exit_code == 0, result.output
    for secret in ENV_SECRETS + PARAMS_SECRETS:
        assert secret not in result.output

    m = load_execution(project, None)
    assert m.provenance is not None
    env = m.provenance.env
    assert env["OPENAI_API_KEY"] == env["HF_TOKEN"] == env["WANDB_API_KEY"] == REDACTED
    assert env["EVALLEDGER_CUSTOM"] == env["MY_PASSWORD"] == REDACTED
    assert env["HTTPS_PROXY"] == f"http://me:{REDACTED}@proxy:3128"
    assert env["EVALLEDGER_NOTE"] == "hello"
    assert "CUSTOM_VAR" not in env and "GITHUB_TOKEN" not in env
    assert m.config["models"]["leaky"]["options"] == {"base_url": "https://other.example/v1"}
    assert m.provenance.packages["evalledger"] == importlib.metadata.version("evalledger")
    assert m.git.dirty and m.git.diff_hash  # -S edited params.yaml

    files = _files(project.root)
    names = {p.relative_to(project.root).as_posix() for p in files}
    assert f"runs/{m.execution_id}/manifest.yaml" in names and "dvc.lock" in names
    assert any(n.startswith(".dvc/cache/") for n in names)  # the cached predictions
    leaks = []
    for path in files:
        data = path.read_bytes()
        rel = path.relative_to(project.root).as_posix()
        for secret in ENV_SECRETS:
            if secret.encode() in data:
                leaks.append(f"{rel}: {secret}")
    assert leaks == []
    # The manifest is plain YAML: the redacted provenance survives a JSON round trip too.
    assert json.loads(m.model_dump_json())["provenance"]["env"]["EVALLEDGER_NOTE"] == "hello"


@pytest.mark.parametrize(
    ("settings", "override", "where"),
    [
        ({"api_key": PARAMS_KEY}, None, "models.m.api_key"),
        ({"base_url": f"https://alice:{URL_PW}@models.example.com/v1"}, None, "models.m.base_url"),
        ({}, f"models.m.auth_token={OVERRIDE_TOKEN}", "models.m.auth_token"),
    ],
)
def test_a_secret_in_params_is_refused_before_anything_is_written(
    tmp_path: Path, settings: dict[str, str], override: str | None, where: str
) -> None:
    # DVC copies a stage's params into dvc.lock verbatim, and git keeps both forever.
    lines = "".join(f"\n    {k}: {v}" for k, v in settings.items())
    params = (
        "axes: {model: [m], benchmark: [b]}\n"
        f"models:\n  m:\n    adapter: baseline{lines}\n"
        "benchmarks: {b: {loader: arith, n_items: 5}}\n"
    )
    root = tmp_path / "proj"
    if override is None:
        root.mkdir()
        project = make_project(
            root,
            "axes: {model: [m], benchmark: [b]}\nmodels: {m: "
            "{adapter: baseline}}\nbenchmarks: {b: {loader: arith}}\n",
        )
        (root / "params.yaml").write_text(params)
        result = invoke(project, "run")
    else:
        project = make_project(root, params)
        result = invoke(project, "run", "-S", override)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert f"params.yaml holds a secret at {where}" in result.output
    assert "api_key_env" in result.output
    assert not (root / "dvc.lock").exists()
    assert not [p for p in (root / "runs").iterdir() if p.name != ".gitkeep"]
    for secret in PARAMS_SECRETS:
        assert secret not in result.output
    if override is not None:
        assert OVERRIDE_TOKEN not in (root / "params.yaml").read_text()
