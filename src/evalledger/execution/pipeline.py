"""dvc.yaml generation and dvc.lock recording.

evalledger owns one stage in dvc.yaml, ``eval``, a DVC ``matrix:`` over the axes in
params.yaml; every other stage is the user's and is kept as written. After cells run
outside DVC, :func:`record_cells` writes their lock entries the way ``dvc commit -f``
would, but with one dump of dvc.lock for the whole batch instead of one per stage.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
from typing import TYPE_CHECKING, Any

from evalledger.dvcyaml import load_dvc_yaml, write_dvc_yaml
from evalledger.errors import ConfigError, EvalLedgerError
from evalledger.matrix import STAGE, Cell
from evalledger.params import AXES, plain_data

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = [
    "record_cells",
    "render_stage",
    "stale_cells",
    "sync_dvc_yaml",
]


def render_stage(axis_names: list[str], judges: bool = False) -> dict[str, Any]:
    """The ``eval`` stage for a matrix over ``axis_names`` (canonical order).

    With ``judges``, every cell also depends on the ``judges:`` section, so changing a
    judge re-runs the cells it grades.
    """
    item = {a: "${item.%s}" % a for a in axis_names}  # noqa: UP031 - DVC's own syntax
    key = "/".join(item.values())
    args = " ".join(f"{a}={v}" for a, v in item.items())
    return {
        "matrix": {a: "${axes.%s}" % a for a in axis_names},  # noqa: UP031
        "cmd": f"evalledger cell {args}",
        "params": [f"{AXES[a]}.{item[a]}" for a in axis_names] + (["judges"] if judges else []),
        "outs": [
            f"predictions/{key}.jsonl",
            {f"metrics/{key}.scores.csv": {"cache": False}},
        ],
        "metrics": [{f"metrics/{key}.json": {"cache": False}}],
    }


def sync_dvc_yaml(project: Project, spec: MatrixSpec) -> bool:
    """Make dvc.yaml's ``eval`` stage match the axes; keep every other stage. True if changed."""
    doc = load_dvc_yaml(project)
    stages = doc.setdefault("stages", {})
    if stages is None:
        stages = doc["stages"] = {}
    wanted = render_stage(spec.axis_names, bool(spec.judges))
    if plain_data(stages.get(STAGE)) == wanted:
        return False
    stages[STAGE] = wanted
    write_dvc_yaml(project, doc)
    return True


def record_cells(project: Project, cells: list[Cell]) -> int:
    """Record finished cells in dvc.lock as ``dvc commit -f`` does, in one lock dump.

    Each stage is saved (deps and outs hashed) and committed (the predictions go into the
    DVC cache) through DVC's own objects, so ``dvc status`` agrees with what we wrote.
    """
    if not cells:
        return 0
    import logging

    dvc_logger = logging.getLogger("dvc")
    level = dvc_logger.level
    # DVC's "Updating lock file" lines and its progress bars (shown below ERROR) are noise here
    dvc_logger.setLevel(logging.CRITICAL)
    try:
        # DVC resolves stage paths against the working directory; its progress bars (from
        # dvc_data too) would draw over ours, and its failures arrive as exceptions anyway.
        with contextlib.chdir(project.root), contextlib.redirect_stderr(io.StringIO()):
            return _record(project, {c.stage for c in cells})
    finally:
        dvc_logger.setLevel(level)


def _record(project: Project, wanted: set[str]) -> int:
    import logging

    from dvc.dvcfile import load_file
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    try:
        with Repo(str(project.root)) as repo, lock_repo(repo):
            logging.getLogger("dvc").setLevel(logging.CRITICAL)  # Repo() may reset it
            dvcfile = load_file(repo, str(project.dvc_yaml))
            stages = [s for s in dvcfile.stages.values() if s.name in wanted]
            missing = wanted - {s.name for s in stages}
            if missing:
                raise ConfigError(
                    f"dvc.yaml has no stage {sorted(missing)[0]!r}",
                    "run `evalledger run` to regenerate dvc.yaml from params.yaml",
                )
            with _params_read_once():
                for stage in stages:
                    # Like `dvc repro` for stages with uncached outputs: no run-cache entry.
                    stage.save(run_cache=False)
                    stage.commit()
            dvcfile.dump_stages(stages, update_pipeline=False)
    except DvcException as exc:
        raise EvalLedgerError(
            f"recording cells in dvc.lock failed: {exc}",
            "fix the DVC error, then run `evalledger run --resume` to record them",
        ) from None
    return len(stages)


@contextlib.contextmanager
def _params_read_once() -> Iterator[None]:
    """Parse each params file once for the whole batch, not three times per stage.

    DVC re-reads params.yaml for every params dependency it saves; across a batch the
    file does not change (we hold the run lock), so one parse serves every stage.
    """
    try:
        import dvc.dependency.param as param_mod
    except ImportError:  # pragma: no cover - a DVC without this module: no shortcut
        yield
        return
    original = getattr(param_mod, "load_path", None)
    if original is None:
        yield
        return
    parsed: dict[tuple[str, int, str], Any] = {}

    def load_path(path: str, fs: Any, **kwargs: Any) -> Any:
        key = (str(path), id(fs), repr(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = original(path, fs, **kwargs)
        return copy.deepcopy(parsed[key])

    param_mod.load_path = load_path
    try:
        yield
    finally:
        param_mod.load_path = original


def _md5(path: Path) -> str | None:
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def stale_cells(project: Project, spec: MatrixSpec, cells: list[Cell]) -> list[Cell]:
    """Cells whose dvc.lock entry does not match the current params and outputs.

    This is ``dvc status`` for our own stages, answered from dvc.lock without importing
    DVC: the stage's recorded params must equal params.yaml's and every output must
    exist with its recorded md5.
    """
    import yaml

    try:
        lock = yaml.load(project.dvc_lock.read_text(encoding="utf-8"),
                         Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # fmt: skip
    except FileNotFoundError:
        return list(cells)
    entries = (lock or {}).get("stages") or {}
    stale = []
    for cell in cells:
        entry = entries.get(cell.stage)
        if not entry or not _entry_fresh(project, spec, cell, entry):
            stale.append(cell)
    return stale


def _entry_fresh(project: Project, spec: MatrixSpec, cell: Cell, entry: dict[str, Any]) -> bool:
    recorded = (entry.get("params") or {}).get("params.yaml") or {}
    current = {f"{AXES[a]}.{v}": spec.value_config(a, v) for a, v in cell.axes}
    if spec.judges:
        current["judges"] = spec.judges
    if recorded != current:
        return False
    expected = render_stage(spec.axis_names)["cmd"]
    for axis, value in cell.axes:
        expected = expected.replace("${item.%s}" % axis, value)  # noqa: UP031
    if entry.get("cmd") != expected:
        return False
    outs = {o.get("path"): o.get("md5") for o in entry.get("outs") or []}
    for rel in (cell.predictions_path, cell.scores_path, cell.metrics_path):
        if rel not in outs or _md5(project.path(rel)) != outs[rel]:
            return False
    return True
