"""dvc.yaml generation and dvc.lock recording.

evalledger owns one stage in dvc.yaml, ``eval``, a DVC ``matrix:`` over the axes in
params.yaml; every other stage is the user's and is kept as written. After cells run
outside DVC, :func:`record_cells` writes their lock entries the way ``dvc commit -f``
would, but with one dump of dvc.lock for the whole batch instead of one per stage.

dvc.lock is written here, not by DVC's in-place dump: DVC's serializer makes the same
bytes, and :func:`~evalledger.atomic.atomic_write` replaces the file, so a kill leaves
the old lock or the new one. A dvc.lock that is empty or invalid anyway (from any cause)
is rebuilt by :func:`repair_dvc_lock` from what the manifests in runs/ record as
completed and whose outputs are there, recorded again without evaluating anything.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.dvcyaml import edit_dvc_yaml, render_stage
from evalledger.errors import ConfigError, CorruptFileError, EvalLedgerError, notice
from evalledger.execution.lockfile import file_md5
from evalledger.matrix import STAGE, Cell, expand, stage_params
from evalledger.params import plain_data
from evalledger.safeload import MAX_DVC_FILE_BYTES, load_json, load_yaml

if TYPE_CHECKING:
    from collections.abc import Iterator

    from evalledger.manifest import CellRecord
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = [
    "lock_problem",
    "read_lock",
    "record_cells",
    "recoverable_cells",
    "render_stage",
    "repair_dvc_lock",
    "stale_cells",
    "sync_dvc_yaml",
]


def sync_dvc_yaml(project: Project, spec: MatrixSpec) -> bool:
    """Make dvc.yaml's ``eval`` stage match the axes; keep every other stage. True if changed.

    The edit goes through :func:`~evalledger.dvcyaml.edit_dvc_yaml`, the lock a Tracker
    declaring its outputs takes too, so neither loses the other's change. The launcher
    the stage's cmd runs is written too (:func:`~evalledger.execution.launcher.ensure_launcher`).
    """
    from evalledger.execution.launcher import ensure_launcher

    ensure_launcher(project)
    wanted = render_stage(spec.axis_names, *spec.stage_options)

    def edit(doc: Any) -> bool:
        stages = doc.get("stages")
        if stages is None:
            stages = doc["stages"] = {}
        if not isinstance(stages, dict):
            raise ConfigError("dvc.yaml: stages must be a mapping", "fix dvc.yaml by hand")
        if plain_data(stages.get(STAGE)) == wanted:
            return False
        stages[STAGE] = wanted
        return True

    return edit_dvc_yaml(project, edit)


def read_lock(project: Project) -> tuple[dict[str, Any], str | None]:
    """dvc.lock's ``stages`` (empty when absent) and what is wrong with it, if anything.

    The last parse is kept by the file's content: a run asks several times (its plan,
    the outputs to restore, the cells to record) and 10,000 stages take seconds. The
    stages are shared: callers read them, never change them.
    """
    try:
        data = project.dvc_lock.read_bytes()
    except FileNotFoundError:
        return {}, None
    digest = hashlib.sha256(data).digest()
    if digest not in _LAST_LOCK:
        _LAST_LOCK.clear()  # one file's parse: the last one asked for
        _LAST_LOCK[digest] = _parse_lock(data)
    return _LAST_LOCK[digest]


_LAST_LOCK: dict[bytes, tuple[dict[str, Any], str | None]] = {}


def _parse_lock(data: bytes) -> tuple[dict[str, Any], str | None]:
    if not data.strip():
        return {}, "dvc.lock is empty"
    try:
        doc = load_yaml(data, "dvc.lock", max_bytes=MAX_DVC_FILE_BYTES, unique_keys=True)
    except CorruptFileError as exc:
        return {}, exc.message
    stages = doc.get("stages", {}) if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("schema") != "2.0"
        or not isinstance(stages, dict)
        or not all(isinstance(k, str) and _entry_shaped(v) for k, v in stages.items())
    ):
        return {}, "dvc.lock is not a DVC lock file (schema 2.0)"
    return stages, None


def _entry_shaped(entry: Any) -> bool:
    """A stage entry in the shape of DVC's lock schema (what it checks before reading)."""
    if not isinstance(entry, dict) or not set(entry) <= {"cmd", "deps", "params", "outs"}:
        return False
    if not isinstance(entry.get("cmd"), str | list):
        return False
    for key in ("deps", "outs"):
        files = entry.get(key, [])
        if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) for f in files
        ):
            return False
    params = entry.get("params", {})
    return isinstance(params, dict) and all(isinstance(v, dict) for v in params.values())


def lock_problem(project: Project) -> str | None:
    """Why dvc.lock cannot be used (empty, not YAML, not a lock file); None if it can."""
    return read_lock(project)[1]


def repair_dvc_lock(project: Project, spec: MatrixSpec) -> int | None:
    """Rebuild an empty or invalid dvc.lock without evaluating anything; None if it was fine.

    The cells of :func:`recoverable_cells` are recorded again (their outputs are hashed
    as they are), with a one-line notice on stderr. Returns how many were recorded.
    """
    problem = lock_problem(project)
    if problem is None:
        return None
    sync_dvc_yaml(project, spec)  # the cells' stages must be in dvc.yaml to be recorded
    cells = recoverable_cells(project, spec)
    return _record_batch(project, {c.stage for c in cells}, rebuild=problem)


def recoverable_cells(project: Project, spec: MatrixSpec) -> list[Cell]:
    """Cells of the matrix whose outputs a completed evaluation in runs/ left, unchanged since.

    For each cell the newest record in the manifests counts: it must be completed, at the
    config params.yaml gives the cell now, and the metrics, scores and predictions must
    all be there with the number of items the record says. A cell that a later execution
    started, or whose outputs are missing or torn, is not among them: it runs again.
    """
    from evalledger.execution.cell import cell_context
    from evalledger.execution.executions import execution_ids, manifest_path
    from evalledger.manifest import CellStatus, read_manifest

    current = {c.key: c for c in expand(spec)}
    newest: dict[str, tuple[float, CellRecord]] = {}
    for exec_id in execution_ids(project):
        try:
            manifest = read_manifest(manifest_path(project, exec_id))
        except EvalLedgerError:
            continue  # a damaged manifest vouches for nothing
        for key, rec in manifest.cells.items():
            if key not in current or rec.status == CellStatus.PENDING:
                continue  # a pending cell never touched its outputs
            when = (rec.finished_at or rec.started_at or manifest.created_at).timestamp()
            if key not in newest or when >= newest[key][0]:
                newest[key] = (when, rec)
    found = []
    for key, cell in current.items():
        if key not in newest:
            continue
        rec = newest[key][1]
        if (
            rec.status == CellStatus.COMPLETED
            and rec.stage == cell.stage
            and rec.config_hash == cell_context(spec, cell, project.root)[1]
            and _outputs_whole(project, cell, rec.examples_total)
        ):
            found.append(cell)
    return found


def _outputs_whole(project: Project, cell: Cell, n_items: int | None) -> bool:
    """The cell's three outputs exist and each holds ``n_items`` items.

    Scores and predictions are counted as they are read: a million-item cell's files
    are never held whole.
    """
    try:
        metrics = load_json(project.path(cell.metrics_path).read_bytes(), cell.metrics_path)
        n = metrics.get("n") if isinstance(metrics, dict) else None
        if not isinstance(n, int) or n != n_items:
            return False
        with project.path(cell.scores_path).open(encoding="utf-8", newline="") as fh:
            rows = sum(1 for _ in csv.reader(fh)) - 1
        with project.path(cell.predictions_path).open("rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    except (OSError, UnicodeDecodeError, EvalLedgerError, csv.Error):
        return False
    return rows == n and lines == n


def record_cells(project: Project, cells: list[Cell], spec: MatrixSpec | None = None) -> int:
    """Record finished cells in dvc.lock as ``dvc commit -f`` does, in one atomic write.

    Each stage is saved (deps and outs hashed) and committed (the predictions go into the
    DVC cache). :mod:`~evalledger.execution.lockfile` writes DVC's bytes itself when the
    stage is ours as rendered; anything else goes through DVC's own Stage objects.
    """
    if not cells:
        return 0
    from evalledger.execution.lockfile import write_entries

    if lock_problem(project) is None:
        recorded = write_entries(project, spec or project.spec(), cells)
        if recorded is not None:
            return recorded
    return _record_batch(project, {c.stage for c in cells}, rebuild=None)


def _record_batch(project: Project, wanted: set[str], rebuild: str | None) -> int:
    import logging

    dvc_logger = logging.getLogger("dvc")
    level = dvc_logger.level
    # DVC's "Updating lock file" lines and its progress bars (shown below ERROR) are noise here
    dvc_logger.setLevel(logging.CRITICAL)
    try:
        # DVC resolves stage paths against the working directory; its progress bars (from
        # dvc_data too) would draw over ours, and its failures arrive as exceptions anyway.
        with contextlib.chdir(project.root), contextlib.redirect_stderr(io.StringIO()):
            recorded, problem = _record(project, wanted, rebuild)
    finally:
        dvc_logger.setLevel(level)
    if problem is not None:
        notice(
            f"{problem}; rebuilt it from the completed cells in runs/ and their outputs: "
            f"{recorded} cells recorded again, none evaluated again"
        )
    return recorded


def _record(project: Project, wanted: set[str], rebuild: str | None) -> tuple[int, str | None]:
    import logging

    from dvc.dvcfile import load_file
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    try:
        with Repo(str(project.root)) as repo, lock_repo(repo):
            logging.getLogger("dvc").setLevel(logging.CRITICAL)  # Repo() may reset it
            _drop_torn_rwlock(repo)
            dvcfile = load_file(repo, str(project.dvc_yaml))
            if rebuild is None:
                try:
                    dvcfile.lockfile_contents  # noqa: B018 - DVC's own validation
                except DvcException as exc:
                    # Our shape check passed but DVC's schema did not: rebuild all the same.
                    rebuild = f"dvc.lock is not a valid DVC lock file ({exc})"
                    wanted |= {c.stage for c in recoverable_cells(project, project.spec())}
            if rebuild is not None:
                dvcfile.__dict__["lockfile_contents"] = {}  # DVC must not read the bad lock
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
            _write_lock(project, stages, fresh=rebuild is not None)
    except DvcException as exc:
        raise EvalLedgerError(
            f"recording cells in dvc.lock failed: {exc}",
            "fix the DVC error, then run `evalledger run --resume` to record them",
        ) from None
    return len(stages), rebuild


def _write_lock(project: Project, stages: list[Any], *, fresh: bool) -> None:
    """Merge ``stages`` into dvc.lock as DVC's ``Lockfile.dump_stages`` does, atomically.

    DVC rewrites the file in place (a kill leaves it empty); here DVC's own round-trip
    parser and serializer make the same bytes, written to a temp file and renamed.
    ``fresh`` starts from an empty lock instead of the one on disk (a rebuild).
    """
    from dvc.stage.serialize import to_lockfile
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    path = project.dvc_lock
    old = None if fresh or not path.exists() else path.read_text(encoding="utf-8")
    data: Any = parse_yaml_for_update(old, str(path)) if old else {}
    if not stages:
        if fresh:
            path.unlink(missing_ok=True)  # nothing to recover: no lock is a valid lock
        return
    if not data:
        data.update({"schema": "2.0"})  # first, as DVC puts it
    data["stages"] = data.get("stages", {})
    for stage in stages:
        data["stages"].update(to_lockfile(stage))
    text = dumps_yaml(data)
    if text != old:
        atomic_write(path, text)


def _drop_torn_rwlock(repo: Any) -> None:
    """:func:`~evalledger.execution.lockfile.drop_torn_rwlock` under DVC's own lock API.

    Through DVC, its guard follows the repository's config (``core.hardlink_lock``).
    """
    from pathlib import Path

    from dvc.lock import make_lock

    from evalledger.execution.lockfile import drop_torn_rwlock

    tmp = Path(repo.tmp_dir)
    if not (tmp / "rwlock").exists():
        return
    hardlink = repo.config["core"].get("hardlink_lock", False)
    with make_lock(str(tmp / "rwlock.lock"), tmp_dir=str(tmp), hardlink_lock=hardlink):
        drop_torn_rwlock(tmp)


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


def stale_cells(project: Project, spec: MatrixSpec, cells: list[Cell]) -> list[Cell]:
    """Cells whose dvc.lock entry does not match the current params and outputs.

    This is ``dvc status`` for our own stages, answered from dvc.lock without importing
    DVC: the stage's recorded params must equal params.yaml's and every output must
    exist with its recorded md5. When dvc.lock is empty or invalid, the cells that
    :func:`repair_dvc_lock` would record again are the ones not stale.
    """
    entries, problem = read_lock(project)
    if problem is not None:
        recoverable = {c.key for c in recoverable_cells(project, spec)}
        return [c for c in cells if c.key not in recoverable]
    stale = []
    for cell in cells:
        entry = entries.get(cell.stage)
        if not entry or not _entry_fresh(project, spec, cell, entry):
            stale.append(cell)
    return stale


def _entry_fresh(project: Project, spec: MatrixSpec, cell: Cell, entry: dict[str, Any]) -> bool:
    params = entry.get("params")
    recorded = (params.get("params.yaml") if isinstance(params, dict) else None) or {}
    if recorded != stage_params(spec, cell):
        return False
    expected = render_stage(spec.axis_names)["cmd"]
    for axis, value in cell.axes:
        expected = expected.replace("${item.%s}" % axis, value)  # noqa: UP031
    if entry.get("cmd") != expected:
        return False
    listed = entry.get("outs")
    outs: dict[Any, Any] = {}
    if isinstance(listed, list):
        outs = {o.get("path"): o.get("md5") for o in listed if isinstance(o, dict)}
    for rel in (cell.predictions_path, cell.scores_path, cell.metrics_path):
        if rel not in outs or file_md5(project.path(rel)) != outs[rel]:
            return False
    if spec.prompt_files:  # the cell's prompt files, as DVC records its deps
        from evalledger.prompts import prompt_paths

        listed = entry.get("deps")
        deps = {d.get("path"): d.get("md5") for d in listed if isinstance(d, dict)} if (
            isinstance(listed, list)) else {}  # fmt: skip
        for rel in prompt_paths(dict(cell.axes)):
            if rel not in deps or file_md5(project.path(rel)) != deps[rel]:
                return False
    return True
