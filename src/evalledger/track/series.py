"""Step series of tracked experiments (``metrics/_series/<name>/<metric>.tsv``) for DVC plots.

A tracked experiment's files are keyed by its name (:data:`DEFAULT_NAME` without one),
not its ID, so that the same path holds the same experiment at every revision, as
DVCLive does: ``dvc plots diff`` overlays revisions in one chart per metric, ``dvc exp
show`` has one column per metric and config key, and ``dvc metrics diff`` gives changes.
``metrics/_series/<name>/`` holds the series, ``metrics/_experiments/<name>.json`` the
latest values and ``metrics/_params/<name>.yaml`` the config and params; a new run of a
name in the same workspace replaces them (git and DVC history keep the earlier ones).
Ledgers written before (no ``outputs`` in the manifest) keep ``<exp id>`` paths, which
:func:`experiment_paths` falls back to. The three folders are declared once in dvc.yaml
(:func:`declare_outputs`).

One file per metric, in the format DVCLive writes and ``dvc plots show`` (and the DVC VS
Code extension) draws: a header ``step<TAB><leaf name>`` and one ``<step><TAB><value>``
row per logged step. A metric named ``train/loss`` lives in ``train/loss.tsv``. A NaN or
infinite value leaves its field empty (DVC hands a ``nan`` token to the chart as text; an
empty field is a missing point), read back as NaN.

Rows are only ever appended, each batch with a single ``write`` on an ``O_APPEND``
descriptor, so a process killed between two system calls leaves whole lines; a reader
still ignores a trailing line without its newline. Values are written with ``repr`` and
read back bit-identical.
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.dvcyaml import edit_dvc_yaml, top_level_list
from evalledger.errors import EvalLedgerError
from evalledger.project import (
    PARAMS_DIR,
    SERIES_DIR,
    SUMMARY_DIR,
    ExperimentPaths,
    experiment_paths,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from evalledger.project import Project

__all__ = [
    "DEFAULT_NAME",
    "PARAMS_DIR",
    "SERIES_DIR",
    "SUMMARY_DIR",
    "ExperimentPaths",
    "append_rows",
    "check_metric_name",
    "declare_outputs",
    "experiment_paths",
    "nonfinite_notice",
    "read_series",
    "read_series_dir",
    "register_metrics",
    "series_path",
    "series_rows",
    "write_params",
]

#: The output name of an experiment started without a ``name``.
DEFAULT_NAME = "train"

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_SUFFIX = ".tsv"


def check_metric_name(name: object) -> str:
    """``name`` if it is a valid metric name, else an :class:`EvalLedgerError`.

    Segments separated by ``/`` start with a letter or digit, then letters, digits,
    ``_ . + -``; ``step`` is the x axis and cannot be a metric.
    """
    if not isinstance(name, str):
        raise EvalLedgerError(f"metric name {name!r} must be a string")
    parts = name.split("/")
    if name == "step" or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise EvalLedgerError(
            f"metric name {name!r} is not allowed",
            "use segments of letters, digits, '_', '.', '+' or '-' separated by '/', "
            "each starting with a letter or digit (and not 'step')",
        )
    return name


def write_params(
    paths: ExperimentPaths, config: Mapping[str, Any], params: Mapping[str, Any]
) -> None:
    """Write config and logged params (already redacted) as the DVC params file.

    ``log_params`` keys win over config keys of the same name.
    """
    import yaml

    from evalledger.track.records import merge_into

    if paths.params_path is None:
        return
    data: dict[str, Any] = {}
    merge_into(data, config)
    merge_into(data, params)
    atomic_write(paths.params_path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def register_metrics(known: set[str], names: Iterable[str]) -> None:
    """Check new metric ``names`` and add them to ``known``; a clash with one raises.

    The summary nests on ``/``, so a metric cannot also be a group of other metrics.
    """
    for key in names:
        if key in known:
            continue
        check_metric_name(key)
        for other in known:
            if other.startswith(key + "/") or key.startswith(other + "/"):
                raise EvalLedgerError(
                    f"metric {key!r} clashes with {other!r}",
                    "a metric name cannot also be a group of other metrics",
                )
        known.add(key)


def series_path(folder: Path, metric: str) -> Path:
    """The file of ``metric`` below an experiment's series folder."""
    *parents, leaf = metric.split("/")
    return folder.joinpath(*parents, leaf + _SUFFIX)


def series_rows(
    batch: list[tuple[int, dict[str, Any]]], last: dict[str, float]
) -> tuple[dict[str, list[str]], list[tuple[str, int, float]]]:
    """The series lines of a batch of logged steps, per metric, and its non-finite values.

    ``last`` is updated with each metric's latest value.
    """
    rows: dict[str, list[str]] = {}
    bad: list[tuple[str, int, float]] = []
    isfinite = math.isfinite
    for step, values in batch:
        for key, value in values.items():
            lines = rows.get(key)
            if lines is None:
                lines = rows[key] = []
            value = float(value)
            if isfinite(value):
                lines.append(f"{step}\t{value!r}\n")
            else:
                lines.append(f"{step}\t\n")
                bad.append((key, step, value))
            last[key] = value
    return rows, bad


def nonfinite_notice(key: str, step: int, value: float) -> str:
    """The one notice of an experiment's first non-finite value."""
    return (
        f"metric {key!r} is {value} at step {step}: written as null in the summary and an "
        "empty series field; the summary's 'nonfinite' counts them"
    )


def append_rows(path: Path, rows: str, *, fsync: bool = False) -> None:
    """Append complete ``step<TAB>value`` lines with one write; a new file gets its header.

    A short write (a full disk) is continued until every byte is out or the write fails;
    whatever reached the file before a crash is whole lines plus at most one partial one,
    which :func:`read_series` ignores.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size == 0:
            rows = f"step\t{path.name[: -len(_SUFFIX)]}\n{rows}"
        data = rows.encode()
        while data:
            written = os.write(fd, data)
            data = data[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_series(path: Path) -> list[tuple[int, float]]:
    """``(step, value)`` rows of one series file; a trailing partial line is ignored."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    lines.pop()  # "" after the last newline, or a line cut short by a crash
    rows = []
    for line in lines[1:]:
        step, _, value = line.partition("\t")
        rows.append((int(step), float(value) if value else math.nan))
    return rows


def read_series_dir(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Metric name -> rows, for every series file of one experiment."""
    out = {}
    for path in sorted(folder.rglob(f"*{_SUFFIX}")):
        rel = path.relative_to(folder).as_posix()
        out[rel[: -len(_SUFFIX)]] = read_series(path)
    return out


def declare_outputs(project: Project, metrics_files: Sequence[str] = ()) -> bool:
    """Declare series (plots), summaries (metrics), params in dvc.yaml once; True if changed.

    ``metrics_files`` (evaluation cells' ``metrics/<name>/<benchmark>.json``) join the
    top-level ``metrics:`` list too, so ``dvc metrics show`` and ``dvc exp show`` see
    them; DVC lists a file once even when a matrix stage also outputs it. Idempotent.
    """
    series, summary = f"metrics/{SERIES_DIR}", f"metrics/{SUMMARY_DIR}"
    params_dir = f"metrics/{PARAMS_DIR}"

    def edit(doc: Any) -> bool:
        changed = False
        plots = top_level_list(doc, "plots")
        names = {p if isinstance(p, str) else next(iter(p), None) for p in plots if p}
        if series not in names:
            plots.append({series: {"x": "step"}})
            changed = True
        metrics = top_level_list(doc, "metrics")
        for path in (summary, *metrics_files):
            if path not in metrics:
                metrics.append(path)
                changed = True
        params = top_level_list(doc, "params")
        if params_dir not in params:
            params.append(params_dir)
            changed = True
        return changed

    return edit_dvc_yaml(project, edit)
