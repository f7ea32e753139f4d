"""What training code hands the Tracker, checked and turned into ledger records.

Config and result objects become plain JSON data, logged values become floats and steps
become integers (each with a one-line error naming the bad value), checkpoints get their
sha256, and per-item evaluation scores become the rows of a cell's ``.scores.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import numbers
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from evalledger import names
from evalledger.errors import EvalLedgerError, describe
from evalledger.redact import redact

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "block_outcome",
    "check_name",
    "evaluation_records",
    "finite_json",
    "hash_path",
    "item_record",
    "logged_directions",
    "logged_number",
    "logged_step",
    "merge_into",
    "nest",
    "plain_mapping",
    "scores_csv",
]

#: Where an evaluation result may hold its per-item scores.
_ITEM_KEYS = ("scores", "items", "per_item")


def plain_mapping(value: Any, what: str) -> dict[str, Any]:
    """A plain JSON-ready dict from a config, params or result object."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    elif callable(getattr(value, "to_dict", None)):
        data = value.to_dict()
    elif isinstance(value, Mapping):
        data = dict(value)
    else:
        raise EvalLedgerError(
            f"{what} must be a mapping, a pydantic model or a dataclass, not {type(value).__name__}"
        )
    try:  # a round trip makes it plain JSON data (numpy scalars, paths... become text)
        plain = json.loads(json.dumps(data, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise EvalLedgerError(f"{what} is not JSON-serialisable: {exc}") from None
    if not isinstance(plain, dict):
        raise EvalLedgerError(f"{what} must be a mapping")
    return plain


def _json_default(obj: Any) -> Any:
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid experiment or benchmark name (:mod:`evalledger.names`)."""
    return names.check_name(kind, name, EvalLedgerError, dots=True)


def block_outcome(exc: BaseException | None) -> tuple[str, str | None]:
    """The final status and error of a ``with`` block that ended with ``exc`` (or None).

    ``sys.exit(0)`` (or ``sys.exit()``) is a normal end: ``completed``. Another exit code
    and Ctrl-C are ``failed``, with ``SystemExit: exit code N`` or ``KeyboardInterrupt:
    interrupted``; any other exception with ``ErrorClass: message``.
    """
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
        return "completed", None
    if isinstance(exc, SystemExit):
        code = exc.code
        return "failed", f"SystemExit: exit code {code}" if isinstance(code, int) else describe(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "failed", "KeyboardInterrupt: interrupted"
    return "failed", describe(exc)


def finite_json(data: Any) -> tuple[Any, int]:
    """``data`` with NaN and infinities replaced by None (JSON ``null``), and how many.

    ``json.dumps`` would write them as ``NaN``/``Infinity``, which no standard JSON
    reader (nor ``dvc metrics``) accepts.
    """
    if isinstance(data, float):
        return (data, 0) if math.isfinite(data) else (None, 1)
    if isinstance(data, dict):
        out, count = {}, 0
        for key, value in data.items():
            out[key], n = finite_json(value)
            count += n
        return out, count
    if isinstance(data, list | tuple):
        pairs = [finite_json(v) for v in data]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    return data, 0


def dump_json(data: Any) -> tuple[str, int]:
    """``data`` as indented standard JSON text (non-finite numbers as null), and how many."""
    clean, count = finite_json(data)
    return json.dumps(clean, indent=2, allow_nan=False) + "\n", count


def logged_number(name: str, value: Any) -> float:
    """A logged value as a float, or a one-line error naming the metric."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        return float(value)
    if not isinstance(value, bool | str | bytes) and hasattr(value, "__float__"):
        try:  # numpy scalars, 0-d tensors
            return float(value)
        except (TypeError, ValueError):
            pass
    raise EvalLedgerError(
        f"metric {name!r} has a non-numeric value {value!r:.60} ({type(value).__name__})",
        "log numbers only (int, float, or a 0-d array)",
    )


def logged_directions(
    metrics: Mapping[str, Any], direction: str | Mapping[str, str]
) -> dict[str, Literal["lower", "higher"]]:
    """``log_metrics(direction=...)``: one for every metric of the call, or name -> one."""
    given = dict.fromkeys(metrics, direction) if isinstance(direction, str) else dict(direction)
    for name, way in given.items():
        if way not in ("lower", "higher") or not isinstance(name, str):
            raise EvalLedgerError(
                f"direction of {name!r} is {way!r}; use 'lower' or 'higher'",
                "lower: smaller is better (loss, cost); higher: larger is better",
            )
    return given  # type: ignore[return-value]


def logged_step(step: Any, last: int = -1, after: int = -1) -> int:
    """``step`` as an integer; not negative, nor before the ``last`` step logged.

    It must also pass ``after``, the last step of a resumed run (its series hold it).
    """
    try:
        if isinstance(step, bool):
            raise TypeError
        value = operator.index(step)
    except TypeError:
        raise EvalLedgerError(f"step {step!r} must be an integer") from None
    if value < 0:
        raise EvalLedgerError(f"step {step!r} must not be negative")
    if value <= after:
        raise EvalLedgerError(
            f"step {value} is not after step {after}, where the resumed run left off; "
            "steps must not decrease",
            f"log at step {after + 1} or later, or leave step out for the next one",
        )
    if value < last:
        raise EvalLedgerError(
            f"step {value} is before the last step {last} logged; steps must not decrease",
            f"log at step {last} or later (several calls may share a step), "
            "or leave step out for the next one",
        )
    return value


def nest(flat: Mapping[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def merge_into(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            merge_into(into[key], value)
        else:
            into[key] = value


def hash_path(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, or of a folder's files by relative name."""
    if path.is_file():
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest(), path.stat().st_size
    if path.is_dir():
        digest, total = hashlib.sha256(), 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            with open(file, "rb") as fh:
                file_hash = hashlib.file_digest(fh, "sha256").hexdigest()
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_hash}\n".encode())
            total += file.stat().st_size
        return digest.hexdigest(), total
    raise EvalLedgerError(f"{path} does not exist", "log a checkpoint after writing it")


def item_record(index: int, item: dict[str, Any]) -> dict[str, Any]:
    """A per-item record as :func:`evalledger.execution.cell.cell_metrics` reads them."""
    item_id = item.get("id", item.get("item_id"))
    if item_id is None or str(item_id) == "":
        raise EvalLedgerError(f"per-item score #{index} has no 'id'")
    score = item.get("score")
    correct = item.get("correct")
    if correct is None:
        correct = score is not None and float(score) >= 1.0
    correct = bool(correct)
    score = float(score if score is not None else correct)
    error = item.get("error") or None
    return {
        "id": str(item_id), "category": str(item.get("category") or ""),
        "correct": correct, "score": score, "partial": bool(item.get("partial", correct)),
        "formatted": bool(item.get("formatted", True)),
        "latency_ms": float(item.get("latency_ms") or 0.0),
        "prompt_tokens": int(item.get("prompt_tokens") or 0),
        "completion_tokens": int(item.get("completion_tokens") or 0),
        "error": str(error) if error else None,
        "error_class": str(error).split(":", 1)[0] if error else None,
        "cluster": "" if item.get("cluster") is None else str(item["cluster"]),
    }  # fmt: skip


def scores_csv(records: list[dict[str, Any]]) -> str:
    """Per-item scores in a cell's ``.scores.csv`` columns (a ``cluster`` one if any)."""
    from evalledger.execution.cell import CLUSTER_COLUMN, TIMED_SCORE_COLUMNS

    clusters = any(r["cluster"] for r in records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*TIMED_SCORE_COLUMNS, CLUSTER_COLUMN] if clusters else TIMED_SCORE_COLUMNS)
    for r in records:
        row = [
            r["id"], r["category"], int(r["correct"]), r["score"], int(r["partial"]),
            int(r["formatted"]), r["latency_ms"], r["prompt_tokens"], r["completion_tokens"],
            r["error"] or "",
        ]  # fmt: skip
        if clusters:
            row.append(r["cluster"])
        writer.writerow(row)
    return buf.getvalue()


def evaluation_records(result: Any) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """An evaluation result's metrics (redacted) and its per-item records, if it has any.

    Metrics computed from the items (accuracy, mean_score...) take precedence over the
    same keys given in the result.
    """
    from evalledger.execution.cell import cell_metrics

    data = plain_mapping(result, "evaluation result")
    items = None
    for key in _ITEM_KEYS:
        value = data.get(key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = data.pop(key)
            break
    given = data["metrics"] if isinstance(data.get("metrics"), dict) else data
    metrics = {k: v for k, v in given.items() if not isinstance(v, list)}
    records = None
    if items is not None:
        records = [item_record(i, item) for i, item in enumerate(items)]
        metrics = {**metrics, **cell_metrics(records)}
    return dict(redact(metrics)), records
