"""Re-running a revision's own DVC stages (training) for ``evalledger reproduce``.

Every stage of dvc.yaml except evalledger's evaluation stage (whose cells
``share/reproduce.py`` re-runs and judges item by item) is re-run with
``python -m dvc repro --force --single-item <stage>`` inside the temporary worktree, so
the commit's params.yaml, code and dvc.yaml apply. Before the run, the numbers of every
metrics file the stage declares (its ``metrics:`` and dvc.yaml's top-level ``metrics:``)
and of its plots (series) files are read as the commit recorded them; afterwards they
are read again and ``verdicts.compare_stage`` judges the difference.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from evalledger.errors import ConfigError
from evalledger.matrix import STAGE
from evalledger.share.verdicts import CellCheck, compare_stage, numeric_metrics

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Stage", "read_stages", "rerun_stages", "select_stages"]

_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
#: The last line of a Python traceback: ``ValueError: ...``, ``mod.SomeError: ...``.
_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b.*")


@dataclass
class Stage:
    """One user stage of dvc.yaml at the revision, and the files it is judged by."""

    name: str
    metrics: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


def _own(name: str) -> bool:
    return name == STAGE or name.startswith(f"{STAGE}@")


def _top_level(root: Path, key: str) -> list[str]:
    """Paths of dvc.yaml's top-level ``metrics:`` or ``plots:`` entries."""
    try:
        data = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    out: list[str] = []
    for entry in data.get(key) or [] if isinstance(data, dict) else []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict):
            for name, spec in entry.items():
                y = spec.get("y") if isinstance(spec, dict) else None
                out.extend(y if isinstance(y, dict) else [name])
    return out


def read_stages(root: Path) -> list[Stage]:
    """The user stages of the dvc.yaml in ``root``, in dvc.yaml order."""
    if not (root / "dvc.yaml").is_file():
        return []
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.CRITICAL)
    try:
        repo = Repo(str(root))
    except DvcException:
        return []
    try:
        stages = [s for s in repo.index.stages if getattr(s, "name", None) and not _own(s.name)]
        out = [Stage(s.name, [o.def_path for o in s.outs if o.metric],
                     [o.def_path for o in s.outs if o.plot]) for s in stages]  # fmt: skip
    except DvcException:
        return []
    finally:
        repo.close()
    top_metrics = _top_level(root, "metrics")
    top_plots = _top_level(root, "plots")
    for stage in out:
        # top-level files a stage writes: its own outs, or any when it is the only stage
        stage.metrics += [p for p in top_metrics if p not in stage.metrics and len(out) == 1]
        stage.plots += [p for p in top_plots if p not in stage.plots and len(out) == 1]
    return out


def select_stages(stages: list[Stage], names: list[str], label: str) -> list[Stage]:
    """The named stages (all when ``names`` is empty); an unknown name is one line."""
    if not names:
        return stages
    known = {s.name: s for s in stages}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown stage {bad[0]!r} at {label}",
                          f"stages: {', '.join(known) or 'none besides evaluation'}")  # fmt: skip
    return [known[n] for n in dict.fromkeys(names)]


def _files(root: Path, path: str) -> list[Path]:
    target = root / path
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file())
    return [target] if target.is_file() else []


def _parse(path: Path) -> Any:
    text = path.read_text()
    if path.suffix in _TABLE_SUFFIXES:
        return list(csv.DictReader(io.StringIO(text), delimiter=_TABLE_SUFFIXES[path.suffix]))
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    return json.loads(text)


def read_numbers(root: Path, paths: list[str]) -> dict[str, float]:
    """``<file>:<dotted name>`` -> number, over the files (rows of series numbered)."""
    out: dict[str, float] = {}
    for path in paths:
        for file in _files(root, path):
            try:
                data = _parse(file)
            except (OSError, ValueError, yaml.YAMLError):
                continue
            if isinstance(data, list):
                data = {str(i): row for i, row in enumerate(data)}
            if isinstance(data, dict) and len(data) == 1:
                only = next(iter(data.values()))  # DVC's {"<name>": [rows]} series form
                if isinstance(only, list):
                    data = {str(i): row for i, row in enumerate(only)}
            if isinstance(data, dict):
                rel = file.relative_to(root).as_posix()
                out.update({f"{rel}:{k}": v for k, v in numeric_metrics(data).items()})
    return out


def _dvc_repro(root: Path, stage: str, log: Callable[[str], None]) -> tuple[int, str | None]:
    """``dvc repro`` of one stage; its exit code and why it failed (exception, else ERROR).

    This interpreter's folder comes first on PATH, so that a stage's ``python`` is the one
    evalledger runs in (its venv), as if it were activated.
    """
    cmd = [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    for line in lines:
        log(line)
    if proc.returncode == 0:
        return 0, None
    raised = [ln.strip() for ln in lines if _EXCEPTION.match(ln.strip())]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return proc.returncode, (raised or errors or lines or [f"exit {proc.returncode}"])[-1]


def rerun_stages(
    root: Path, stages: list[Stage], log: Callable[[str], None], *, rtol: float
) -> list[CellCheck]:
    """Re-run each stage in the worktree ``root`` and judge its metrics and series."""
    checks = []
    for stage in stages:
        recorded = read_numbers(root, stage.metrics)
        recorded_series = read_numbers(root, stage.plots)
        code, error = _dvc_repro(root, stage.name, log)
        if code != 0:
            checks.append(CellCheck(stage.name, "failed", note=f"dvc repro: {error}",
                                    kind="stage"))  # fmt: skip
            continue
        if not stage.metrics and not stage.plots:
            note = "re-ran; it declares no metrics or plots to compare"
            checks.append(CellCheck(stage.name, "match", kind="stage", note=note))
            continue
        new = read_numbers(root, stage.metrics)
        new_series = read_numbers(root, stage.plots)
        if not new and not new_series:
            note = "the re-run wrote none of its metrics or plots"
            checks.append(CellCheck(stage.name, "failed", kind="stage", note=note))
            continue
        checks.append(compare_stage(stage.name, recorded, new, recorded_series, new_series,
                                    rtol=rtol))  # fmt: skip
    return checks
