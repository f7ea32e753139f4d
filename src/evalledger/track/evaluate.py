"""In-process evaluation: run a benchmark on a model object in memory.

::

    import evalledger

    result = evalledger.evaluate(my_model, "gsm8k", n=100)  # writes nothing
    print(result.metrics["accuracy"], result.records[0]["output"])

    with Tracker().experiment(config, name="grpo-7b") as run:
        ...
        run.evaluate(my_model, "gsm8k", n=100)  # the cell metrics/grpo-7b/gsm8k.json

``my_model`` has ``generate(prompt) -> str`` (or ``async def generate``), or is a plain
function of the prompt; see :mod:`evalledger.models.inprocess`. The evaluation goes
through the cell engine of ``evalledger run`` (:func:`~evalledger.execution.cell.
evaluate_cell`): the same prompts, scorer, concurrency, error recording and metrics. Its
scratch files (checkpoint, predictions) go to a temporary folder that is then deleted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalledger.errors import CellError, EvalLedgerError
from evalledger.execution.cell import PreparedCell, evaluate_cell
from evalledger.execution.checkpoint import parse_records
from evalledger.matrix import Cell
from evalledger.models.inprocess import InProcessModel
from evalledger.plugins import BENCHMARKS_GROUP, load_benchmark, load_model, load_scorer, registered
from evalledger.project import Project

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalledger.models.base import Model
    from evalledger.plugin_types import Item
    from evalledger.scorers.base import Scorer

__all__ = ["Evaluation", "TrackerLike", "evaluate", "tracker_evaluate"]


class TrackerLike(Protocol):
    """What :func:`evaluate` needs of a :class:`~evalledger.track.tracker.Tracker`."""

    project: Project

    @property
    def experiment_id(self) -> str | None: ...

    def log_evaluation(self, benchmark: str, result: Any) -> dict[str, Any]: ...


_SCRATCH = Cell((("model", "inprocess"), ("benchmark", "inprocess")))


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` produced.

    ``metrics`` are a cell's metrics (``accuracy``, ``errors``, ``categories``...).
    ``records`` hold one dict per item, in benchmark order: ``id``, ``category``,
    ``correct``, ``score``, ``partial``, ``formatted``, ``extracted``, ``output``,
    ``latency_ms``, the token counts, and ``error`` (``ErrorClass: message``, or None).
    """

    benchmark: str
    metrics: dict[str, Any]
    records: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The form :meth:`Tracker.log_evaluation` reads: metrics and per-item scores."""
        return {"metrics": self.metrics, "scores": self.records}


def evaluate(
    model: Any,
    benchmark: str,
    n: int | None = None,
    *,
    sample_seed: int | None = None,
    project: Project | Path | str | None = None,
    tracker: TrackerLike | None = None,
    template: str | None = None,
    decoding: Mapping[str, Any] | None = None,
    max_concurrency: int = 1,
    **settings: Any,
) -> Evaluation:
    """Evaluate ``model`` on ``benchmark``; write the ledger only when given a ``tracker``.

    ``benchmark`` is a benchmark of params.yaml's ``benchmarks:`` (its loader, settings
    and scorer, unchanged), or else the name of a registered loader (``arith``,
    ``gsm8k``, ``jsonl``...) whose settings, and ``scorer=``, are the keyword arguments.
    ``n`` takes the first ``n`` items in the benchmark's order (all when it has fewer);
    with ``sample_seed`` a seeded random sample of ``n`` items instead, kept in that order.
    ``template`` (holding ``{input}``) and ``decoding`` play the prompt_set and decoding
    axes. A sync ``generate`` runs ``max_concurrency`` calls at a time in worker threads.

    An item whose call raises is recorded as errored (``errors``, ``error_rate``, its
    ``error``), never scored as wrong; if every item errors, :class:`CellError` is raised.
    ``project`` (default: the tracker's, else the one around the current directory, if
    any) is where params.yaml is read. With ``tracker`` (a running experiment) the result
    is recorded by :meth:`Tracker.log_evaluation` as the cell ``<name>/<benchmark>``, per
    item scores included, and ``metrics`` are the ones it wrote.
    """
    if tracker is not None:
        if tracker.experiment_id is None:  # one line, before any item is evaluated
            raise EvalLedgerError("no experiment is running", "call start_experiment() first")
        project = tracker.project if project is None else project
    proj = _project(project)
    bench_cfg = _benchmark_config(proj, benchmark, settings)
    bench = load_benchmark(benchmark, bench_cfg, proj.root if proj else None)
    scorer, judge = _scorer(proj, benchmark, bench_cfg)
    wrapped = InProcessModel(_model_name(model), model, max_concurrency=max_concurrency)
    items = _select(benchmark, bench.load(), n, sample_seed)
    if template is not None and "{input}" not in template:
        raise EvalLedgerError(
            f"template {template!r} has no {{input}}", "put {input} where the question goes"
        )
    prepared = PreparedCell(
        cell=_SCRATCH, config_hash="inprocess", model=wrapped, benchmark=bench,
        scorer=scorer, judge=judge, items=items,
        prompts={it.id: bench.prompt(it, template) for it in items},
        decoding=dict(decoding or {}), price=None,
    )  # fmt: skip
    result = _run(prepared)
    if tracker is not None:
        metrics = tracker.log_evaluation(benchmark, result.to_dict())
        result = dataclasses.replace(result, metrics=metrics)
    return result


def tracker_evaluate(
    self: TrackerLike, model: Any, benchmark: str, n: int | None = None, **options: Any
) -> dict[str, Any]:
    """Evaluate ``model`` on ``benchmark`` as the running experiment's cell; its metrics.

    :meth:`Tracker.evaluate`: :func:`evaluate` with ``tracker=self`` (same options), so
    the result is written by :meth:`Tracker.log_evaluation` as ``<name>/<benchmark>``,
    per-item scores included, and ``evalledger significance`` pairs two runs on it.
    """
    return evaluate(model, benchmark, n, tracker=self, **options).metrics


def _project(project: Project | Path | str | None) -> Project | None:
    if isinstance(project, Project):
        return project
    if project is not None:
        return Project.find(project)
    try:
        return Project.find(None)
    except EvalLedgerError:  # no project here: registered loaders still work
        return None


def _benchmark_config(
    project: Project | None, benchmark: str, settings: dict[str, Any]
) -> dict[str, Any]:
    defined = project.spec().sections.get("benchmarks", {}) if project else {}
    loaders = registered(BENCHMARKS_GROUP)
    if benchmark in defined:
        if settings:
            raise EvalLedgerError(
                f"benchmark {benchmark!r} is defined in params.yaml, so it takes no "
                f"settings here (got {', '.join(sorted(settings))})",
                f"change benchmarks.{benchmark} in params.yaml, or pass a loader name "
                f"with settings (loaders: {', '.join(loaders)})",
            )
        return dict(defined[benchmark])
    if benchmark in loaders:
        return {"loader": benchmark, **settings}
    where = (
        f"params.yaml benchmarks: {', '.join(defined) or 'none'}; "
        if project else "no project found, so no params.yaml benchmarks; "
    )  # fmt: skip
    raise EvalLedgerError(
        f"unknown benchmark {benchmark!r}; {where}loaders: {', '.join(loaders) or 'none'}",
        "pass a benchmark of params.yaml, or a loader name with its settings as keywords",
    )


def _scorer(
    project: Project | None, benchmark: str, cfg: dict[str, Any]
) -> tuple[Scorer | None, Model | None]:
    if cfg.get("scorer") is None:
        return None, None
    scorer = load_scorer(cfg["scorer"], f"benchmarks.{benchmark}.scorer")
    if not scorer.needs_model:
        return scorer, None
    judge_name = cfg["scorer"].get("model") if isinstance(cfg["scorer"], dict) else None
    if project is None or judge_name is None:
        raise EvalLedgerError(
            f"the scorer of benchmark {benchmark!r} needs a judge model",
            "name one (scorer: {name: judge, model: <judge>}) defined in params.yaml",
        )
    where = f"benchmarks.{benchmark}.scorer.model"
    judge = load_model(str(judge_name), project.spec().judge_config(str(judge_name), where))
    scorer.bind(judge)
    return scorer, judge


def _model_name(model: Any) -> str:
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name else type(model).__name__


def _select(benchmark: str, items: list[Item], n: int | None, seed: int | None) -> list[Item]:
    if not items:
        raise CellError(f"benchmark {benchmark!r} has no items")
    if len({it.id for it in items}) != len(items):
        raise CellError(f"benchmark {benchmark!r} has duplicate item ids")
    if n is None:
        if seed is not None:
            raise EvalLedgerError(
                "sample_seed without n samples nothing", "pass n=<items> with sample_seed"
            )
        return items
    if type(n) is not int or n < 1:
        raise EvalLedgerError(f"n must be a positive integer, not {n!r}", "or None for all")
    if n >= len(items):
        return items
    if seed is None:
        return items[:n]
    keep = set(random.Random(seed).sample(range(len(items)), n))
    return [it for i, it in enumerate(items) if i in keep]


def _run(prepared: PreparedCell) -> Evaluation:
    """Evaluate through the cell engine in a scratch project; read its records back."""
    with tempfile.TemporaryDirectory(prefix="evalledger-eval-") as tmp:
        scratch = Project(Path(tmp))

        async def main() -> dict[str, Any]:
            try:
                done = await evaluate_cell(scratch, prepared, keep_checkpoint=True)
            finally:
                await prepared.aclose()
            return done.metrics

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            metrics = asyncio.run(main())
        else:  # called from a running loop (a notebook): run ours in a thread
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:
                metrics = pool.submit(asyncio.run, main()).result()
        path = scratch.checkpoint_path(prepared.cell, prepared.config_hash)
        by_id = parse_records(path.read_bytes())
    records = []
    for item in prepared.items:
        rec = dict(by_id[item.id])
        if "cluster" in item.meta:
            rec["cluster"] = str(item.meta["cluster"])
        records.append(rec)
    return Evaluation(benchmark=prepared.benchmark.name, metrics=metrics, records=records)
