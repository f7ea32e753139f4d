"""dvc.lock entries for our own stages, written as ``dvc commit -f`` writes them.

Recording cells through DVC's Stage objects costs about 10 ms a cell (DVC walks and
deep-copies every params file per stage, then ruamel dumps the whole lock), most of a
large run. Here an entry is built from what a cell's stage is by construction (the
``eval`` stage that :func:`~evalledger.dvcyaml.render_stage` writes): its command, its
prompt files, its params sections and its three outputs, each hashed with md5 as DVC 3
hashes them, and the predictions copied into DVC's cache as ``stage.commit()`` copies
them (read-only, under ``.dvc/cache/files/md5``).

The text is DVC's serializer's, fragment by fragment: ruamel (set up as DVC sets it up)
writes each distinct params section once and each command once, the fixed-shape lines
(paths, md5s, sizes) are formatted directly when they are plain scalars, and the other
stages of dvc.lock keep their text, in place, as DVC's round trip keeps it.
:func:`write_entries` returns None when a case falls outside that (the stage in dvc.yaml
was edited, a cache dir or link type is configured, a file is executable, the lock is
not in DVC's own layout): the caller then goes through DVC. A test checks the bytes
against ``dvc commit -f`` itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.errors import EvalLedgerError

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.matrix import Cell
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["CACHE_STAGING", "LockEntry", "drop_torn_rwlock", "file_md5", "write_entries"]

#: Where an object is staged before it is renamed into DVC's cache.
CACHE_STAGING = ".dvc/tmp/evalledger"

_HEADER = "schema: '2.0'\nstages:\n"
# A scalar ruamel writes as it is: no quoting, no folding, never read as a number or bool.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*(/[A-Za-z0-9_][A-Za-z0-9_.@+-]*)+")
_PLAIN_WORDS = re.compile(r"[A-Za-z0-9_./=+-][A-Za-z0-9_./=@+-]*( [A-Za-z0-9_./=@+-]+)*")
_STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*@[A-Za-z0-9_.@+-]+")
_STAGE_LINE = re.compile(r"^  (?! )([^\n]*?):\n", re.MULTILINE)
_WAIT_FOR_DVC_S = 10.0
# what pathspec's GitWildMatchPattern.escape would escape in a .gitignore entry
_GITIGNORE_SPECIAL = re.compile(r"[\[\]*?!#\\ ]")


@dataclass(frozen=True)
class LockEntry:
    """One stage's lock entry: what ``to_single_stage_lockfile`` would serialize."""

    name: str
    cmd: str
    deps: list[tuple[str, str, int]]
    """(path, md5, size) of each dependency file, sorted by path."""
    params: dict[str, Any]
    """params.yaml key -> value, sorted by key as DVC sorts them."""
    outs: list[tuple[str, str, int]]


def write_entries(project: Project, spec: MatrixSpec, cells: list[Cell]) -> int | None:
    """Record ``cells`` in dvc.lock as ``dvc commit -f`` would; None to leave it to DVC.

    Every output must be in place (the cells finished). The predictions are put in
    DVC's cache first, then dvc.lock is replaced in one atomic write, under DVC's own
    repository lock.
    """
    if not cells or not _fast_path_applies(project, spec):
        return None
    existing = _read_existing(project)
    if existing is None:
        return None
    entries: list[LockEntry] = []
    for cell in cells:
        entry = _entry(project, spec, cell)
        if entry is None:
            return None
        entries.append(entry)
    if any(_GITIGNORE_SPECIAL.search(c.predictions_path) for c in cells):
        return None  # DVC escapes these in .gitignore; leave it to DVC
    with _DvcRepoLock(project):
        _drop_torn_rwlock(project)
        for entry, cell in zip(entries, cells, strict=True):
            _put_in_cache(project, cell.predictions_path, entry)
        _ignore_in_git(project, [c.predictions_path for c in cells])
        text = _merge(existing, entries)
        if not existing or text != "".join([_HEADER, *(t for _, t in existing)]):
            atomic_write(project.dvc_lock, text)
    return len(entries)


def _fast_path_applies(project: Project, spec: MatrixSpec) -> bool:
    """Our stage is as we render it, and DVC's cache is where and how DVC keeps it."""
    from evalledger.dvcyaml import render_stage
    from evalledger.safeload import MAX_DVC_YAML_BYTES, load_yaml

    try:
        raw = project.dvc_yaml.read_bytes()
    except FileNotFoundError:
        return False
    doc = load_yaml(raw, "dvc.yaml", max_bytes=MAX_DVC_YAML_BYTES)
    stage = doc.get("stages", {}).get("eval") if isinstance(doc, dict) else None
    if not isinstance(stage, dict) or doc.get("vars"):
        return False
    run = spec.raw.get("run")
    want = render_stage(spec.axis_names, judges=bool(spec.judges),
                        prompt_files=spec.prompt_files,
                        run_repeats=isinstance(run, dict) and "repeats" in run)  # fmt: skip
    if stage != want:
        return False
    for name in ("config", "config.local"):
        try:
            config = (project.root / ".dvc" / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        # a cache dir, a link type (the workspace file becomes a link) or hardlink locks
        if re.search(r"^\s*\[\s*['\"]?cache|^\s*hardlink_lock", config, re.MULTILINE):
            return False
    return True


def _entry(project: Project, spec: MatrixSpec, cell: Cell) -> LockEntry | None:
    from evalledger.dvcyaml import render_stage
    from evalledger.matrix import stage_params

    cmd = render_stage(spec.axis_names)["cmd"]
    for axis, value in cell.axes:
        cmd = cmd.replace("${item.%s}" % axis, value)  # noqa: UP031 - DVC's own syntax
    deps: list[tuple[str, str, int]] = []
    if spec.prompt_files:
        from evalledger.prompts import prompt_paths

        for rel in sorted(prompt_paths(dict(cell.axes))):
            found = _hashed(project, rel)
            if found is None:
                return None
            deps.append(found)
    outs = []
    for rel in sorted((cell.predictions_path, cell.scores_path, cell.metrics_path)):
        found = _hashed(project, rel)
        if found is None:
            return None
        outs.append(found)
    params = stage_params(spec, cell)
    return LockEntry(cell.stage, cmd, deps, {k: params[k] for k in sorted(params)}, outs)


def file_md5(path: Path) -> str | None:
    """The md5 of a file's bytes, read a block at a time; None if there is no file."""
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "md5").hexdigest()
    except FileNotFoundError:
        return None


def _hashed(project: Project, rel: str) -> tuple[str, str, int] | None:
    """(path, md5, size) as DVC 3 records a file; None for what DVC records otherwise."""
    path = project.path(rel)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if st.st_mode & 0o111 or not path.is_file():  # DVC adds isexec: true; a dir is a tree
        return None
    md5 = file_md5(path)
    return None if md5 is None else (rel, md5, st.st_size)


def _put_in_cache(project: Project, rel: str, entry: LockEntry) -> None:
    """The predictions into DVC's cache, read-only, as ``stage.commit()`` leaves them.

    As a hard link when the file system allows: one copy on disk, not two. Safe because
    evalledger never writes a file in place (a new version is a new file renamed over
    the old name), so the cached object keeps its content; the shared file is made
    read-only, as DVC's ``cache.type: hardlink`` protects it. Elsewhere, a copy.
    """
    md5 = next(h for p, h, _ in entry.outs if p == rel)
    target = project.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # Staged in .dvc/tmp/evalledger (what a kill leaves there, remove_leftovers clears),
    # not beside the object: a run never scans DVC's whole cache.
    staging = project.root / CACHE_STAGING
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f".{md5}.{os.getpid()}.tmp"
    source = project.path(rel)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or one without hard links
            with source.open("rb") as src, tmp.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _ignore_in_git(project: Project, paths: list[str]) -> None:
    """Each cached output in its folder's .gitignore (``/name``), as DVC adds it.

    Unless a pattern of git's already ignores it, as DVC's scm_context checks.
    """
    import subprocess

    if not (project.root / ".git").exists():
        return  # a DVC project without git (--no-scm) writes none
    listed = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z"], cwd=project.root,
        input="\0".join(paths) + "\0", capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    ignored = set(listed.split("\0"))
    by_folder: dict[str, list[str]] = {}
    for rel in dict.fromkeys(paths):
        if rel not in ignored:
            folder, _, name = rel.rpartition("/")
            by_folder.setdefault(folder, []).append(f"/{name}")
    for folder, entries in by_folder.items():
        path = project.path(f"{folder}/.gitignore")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        lines = set(text.splitlines(keepends=True))
        add = [f"{e}\n" for e in entries if f"{e}\n" not in lines]
        if add:
            sep = "" if not text or text.endswith("\n") else "\n"
            atomic_write(path, text + sep + "".join(add))


def _read_existing(project: Project) -> list[tuple[str, str]] | None:
    """dvc.lock as (stage name, entry text) in file order; None unless DVC laid it out."""
    try:
        text = project.dvc_lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if not text.startswith(_HEADER):
        return None
    body = text[len(_HEADER) :]
    starts = list(_STAGE_LINE.finditer(body))
    if not starts or starts[0].start() != 0:
        return None
    blocks = []
    for i, match in enumerate(starts):
        name = match.group(1)
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*", name):  # e.g. a quoted key
            return None
        end = starts[i + 1].start() if i + 1 < len(starts) else len(body)
        blocks.append((name, body[match.start() : end]))
    return blocks


def _merge(existing: list[tuple[str, str]], entries: list[LockEntry]) -> str:
    """DVC's ``data["stages"].update(...)``: replaced in place, new ones at the end."""
    blocks = dict(existing)
    fragments = _Fragments()
    for entry in entries:
        blocks[entry.name] = fragments.entry(entry)
    return _HEADER + "".join(blocks.values())


class _Fragments:
    """Entry texts, with the pieces ruamel must write made once per distinct value."""

    def __init__(self) -> None:
        self._params: dict[str, str] = {}

    def entry(self, e: LockEntry) -> str:
        parts = [self._head(e.name, e.cmd)]
        if e.deps:
            parts.append("    deps:\n")
            parts += [_file(*d) for d in e.deps]
        if e.params:
            parts.append("    params:\n      params.yaml:\n")
            parts += [self._param(k, v) for k, v in e.params.items()]
        parts.append("    outs:\n")
        parts += [_file(*o) for o in e.outs]
        return "".join(parts)

    def _head(self, name: str, cmd: str) -> str:
        # ruamel folds a plain scalar at a space past column 80 (its best_width)
        direct = _STAGE_NAME.fullmatch(name) and len(name) <= 70 and _PLAIN_WORDS.fullmatch(cmd)
        if direct and len(cmd) <= 71:
            return f"  {name}:\n    cmd: {cmd}\n"
        return _ruamel({"stages": {name: {"cmd": cmd}}}).split("\n", 1)[1]

    def _param(self, key: str, value: Any) -> str:
        cache_key = json.dumps([key, value], sort_keys=False, default=repr)
        if cache_key not in self._params:
            text = _ruamel({"stages": {"s": {"params": {"params.yaml": {key: value}}}}})
            self._params[cache_key] = text.split("\n", 4)[4]
        return self._params[cache_key]


def _file(path: str, md5: str, size: int) -> str:
    # ruamel moves a scalar that would pass column 80 to the next line, indented
    if not _PLAIN_PATH.fullmatch(path) or len(path) > 68:
        text = _ruamel({"stages": {"s": {"outs": [{"path": path}]}}})
        path_line = text.split("\n", 3)[3].rstrip("\n")
        return f"{path_line}\n      hash: md5\n      md5: {md5}\n      size: {size}\n"
    return f"    - path: {path}\n      hash: md5\n      md5: {md5}\n      size: {size}\n"


_YAML: list[Any] = []


def _ruamel(data: Any) -> str:
    """``dvc.utils.serialize.dumps_yaml``, without importing DVC."""
    if not _YAML:
        from ruamel.yaml import YAML

        yaml = YAML()
        yaml.default_flow_style = False
        _YAML.append(yaml)
    stream = io.StringIO()
    _YAML[0].dump(data, stream)
    return stream.getvalue()


def _drop_torn_rwlock(project: Project) -> None:
    """:func:`drop_torn_rwlock` under DVC's guard of that file, taken as DVC takes it."""
    tmp = project.root / ".dvc" / "tmp"
    if (tmp / "rwlock").exists():
        with _DvcRepoLock(project, tmp / "rwlock.lock"):
            drop_torn_rwlock(tmp)


def drop_torn_rwlock(tmp: Path) -> None:
    """Remove DVC's stage lock table (``<tmp>/rwlock``) if a kill tore it.

    DVC rewrites it in place, and a torn table fails every later DVC command (and
    ``stage.commit``) with "JSON structure is corrupted"; a readable table is left to
    DVC, which drops the entries of dead processes itself. Call it holding DVC's guard
    of the file, ``<tmp>/rwlock.lock``.
    """
    try:
        json.loads((tmp / "rwlock").read_bytes() or b"-")
    except FileNotFoundError:
        return
    except ValueError:
        (tmp / "rwlock").unlink(missing_ok=True)


class _DvcRepoLock:
    """DVC's repository lock (``.dvc/tmp/lock``, zc.lockfile), as a DVC command holds it."""

    def __init__(self, project: Project, path: Path | None = None) -> None:
        self._path: Path = path or project.root / ".dvc" / "tmp" / "lock"
        self._lock: Any = None

    def __enter__(self) -> None:
        import zc.lockfile  # type: ignore[import-untyped]  # DVC's own lock library

        self._path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _WAIT_FOR_DVC_S
        while True:
            try:
                self._lock = zc.lockfile.LockFile(str(self._path))
                return
            except zc.lockfile.LockError:
                if time.monotonic() > deadline:
                    raise EvalLedgerError(
                        f"a DVC command holds {self._path.name} in .dvc/tmp, so dvc.lock "
                        "cannot be written",
                        "let it finish, then run `evalledger run --resume` to record the cells",
                    ) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self._lock.close()
