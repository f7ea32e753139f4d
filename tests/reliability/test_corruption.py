"""The corruption matrix: every ledger file kind x every corruption, read by every command.

Issue 10, findings 6, 8, 12 and 15. One project is built once (two executions, each
committed; a model that errors on one item, so checkpoints are left for a resume) and
copied per case. Each case damages one file, in the working tree or committed at HEAD,
and runs the commands that read that file. A command passes when:

- its exit code is not 70 and its output holds no traceback and no "internal error";
- a failure (exit 2) is one ``Error:`` line (warnings aside) that names the damaged file;
- it finishes within 10 s (alias bombs run in a subprocess with that timeout, so a hang
  cannot hang the suite; everything else runs in-process);
- no file of the project changed, except what a writing command that succeeded wrote
  (and never the damaged file, unless it is a file ``run`` repairs: dvc.lock, a
  checkpoint);
- where the rest can be answered without the file, the command answers, with a warning
  that names it (e.g. ``leaderboard`` beside one damaged metrics file); where it needs
  the file, it fails naming it; a damaged cache changes nothing at all in the output.

Each case counts once in the suite's summary line (``reliability("corruption", ok)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import CliRunner

from conftest import git, make_project
from evalledger.cli import cli

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PARAMS = """\
axes:
  model: [solver, noisy, flaky]
  benchmark: [arith, arith_hard]
models:
  solver: {adapter: baseline, strategy: solver}
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
  flaky: {adapter: python, callable: flaky_model:generate, path: .}
benchmarks:
  arith: {loader: arith, n_items: 30, seed: 1, difficulty: easy}
  arith_hard: {loader: arith, n_items: 20, seed: 2, difficulty: hard}
run:
  jobs: 3
"""
# Errors on one item of each benchmark, so its cells keep their checkpoints.
FLAKY_MODEL = """\
def generate(prompt, item):
    if item.id.endswith("-0003"):
        raise ValueError("flaky on purpose")
    return f"The answer is {item.target}."
"""
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Built:
    """The pristine project, its two executions, and reference outputs."""

    root: Path
    exec1: str
    exec2: str
    checkpoint: str
    pristine: dict[str, str]


def _invoke(root: Path, args: list[str]) -> tuple[int, str]:
    """An in-process command run from the project folder (the flaky model's path is `.`)."""
    here = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=False)
    finally:
        os.chdir(here)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("corruption") / "proj"
    root.mkdir()
    (root / "flaky_model.py").write_text(FLAKY_MODEL)
    make_project(root, PARAMS)
    code, out = _invoke(root, ["run", "--commit", "--models", "solver,noisy"])
    assert code == 0, out
    time.sleep(1.0)  # execution IDs tell time in seconds: keep the two apart
    code, out = _invoke(root, ["run", "--commit", "-S", "models.noisy.seed=4"])
    assert code == 1 and "flaky/arith completed 29/30" in out, out  # 1 item errored
    exec1, exec2 = sorted(p.name for p in (root / "runs").glob("exec_*"))
    checkpoint = next((root / ".evalledger/checkpoints").glob("flaky__arith.*.jsonl"))
    built = Built(root, exec1, exec2, str(checkpoint.relative_to(root)), {})
    for name in PRISTINE:  # also fills the parsed cache that the cache cases damage
        code, out = _invoke(root, command(built, name))
        assert code == 0, (name, out)
        built.pristine[name] = out
    return built


# --- the commands -------------------------------------------------------------------

#: name -> arguments; ``{1}`` and ``{2}`` are the two executions.
COMMANDS: dict[str, list[str]] = {
    "list": ["list"],
    "stats": ["stats"],
    "status": ["status"],
    "show1": ["show", "{1}"],
    "show2": ["show", "{2}"],
    "export": ["export", "--all"],
    "compare": ["compare", "{1}", "{2}"],
    "leaderboard": ["leaderboard"],
    "leaderboard@HEAD": ["leaderboard", "--rev", "HEAD"],
    "diff": ["diff"],
    "diff-history": ["diff", "HEAD~1", "HEAD"],
    "significance": ["significance", "solver", "noisy"],
    "significance@HEAD": ["significance", "solver@HEAD", "noisy@HEAD"],
    "dry-run": ["run", "--dry-run"],
    "resume-dry-run": ["run", "--resume", "--dry-run"],
    "revert-dry-run": ["revert", "{1}", "--dry-run"],
    # Writing commands: each runs on its own copy.
    "run": ["run", "--force", "--models", "solver", "--benchmarks", "arith"],
    "resume": ["run", "--resume"],
    "revert": ["revert", "{1}"],
}
WRITING = {"run", "resume", "revert"}
#: Reference outputs, compared with those over a damaged cache.
PRISTINE = ["list", "leaderboard", "diff-history", "show2", "significance"]


def command(built: Built, name: str) -> list[str]:
    return [a.replace("{1}", built.exec1).replace("{2}", built.exec2) for a in COMMANDS[name]]


# --- the files and their corruptions ------------------------------------------------

#: kind -> the commands that read it.
READERS: dict[str, list[str]] = {
    "params": ["dry-run", "diff", "diff-history", "leaderboard", "leaderboard@HEAD", "list",
               "revert-dry-run", "significance", "status", "run"],
    "dvc.yaml": ["dry-run", "run", "revert"],
    "dvc.lock": ["dry-run", "resume-dry-run", "revert-dry-run", "run", "resume"],
    "manifest": ["list", "stats", "status", "show1", "show2", "export", "compare",
                 "resume-dry-run", "run", "resume"],
    "metrics": ["leaderboard", "leaderboard@HEAD", "diff", "diff-history", "show2",
                "compare", "export", "significance"],
    "scores": ["leaderboard", "leaderboard@HEAD", "diff", "diff-history", "significance",
               "significance@HEAD", "export"],
    "checkpoint": ["resume-dry-run", "status", "resume"],
    "cache": ["list", "stats", "leaderboard", "diff-history", "show2", "significance"],
}  # fmt: skip
YAML_KINDS = ("params", "dvc.yaml", "dvc.lock", "manifest")
#: Kinds git keeps (the others are local state in .evalledger/, git-ignored).
COMMITTED_KINDS = ["params", "dvc.yaml", "dvc.lock", "manifest", "metrics", "scores"]
#: Files a writing command may legitimately rewrite once it could read them (dvc.yaml's
#: stage is evalledger's; dvc.lock and checkpoints are repaired).
REPAIRED_BY_RUN = {"dvc.yaml", "dvc.lock", "checkpoint"}


def target(built: Built, kind: str) -> str:
    return {
        "params": "params.yaml",
        "dvc.yaml": "dvc.yaml",
        "dvc.lock": "dvc.lock",
        "manifest": f"runs/{built.exec2}/manifest.yaml",
        "metrics": "metrics/noisy/arith.json",
        "scores": "metrics/noisy/arith.scores.csv",
        "checkpoint": built.checkpoint,
        "cache": ".evalledger/cache/parsed-v2.sqlite",
    }[kind]


def _alias_bomb(data: bytes) -> bytes:
    """A billion laughs (9^9 leaves) whose top is the value of a new top-level key."""
    lines = ['_l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"_l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    lines.append("_bomb: *l8")
    return ("\n".join(lines) + "\n").encode() + data


def _deep(kind: str, data: bytes) -> bytes:
    """A value nested 800 levels deep: past what recursive readers survive, within what
    libyaml and json parse."""
    nested = "[" * 800 + "]" * 800
    if kind in YAML_KINDS:
        return f"_deep: {nested}\n".encode() + data
    if kind == "metrics":
        return data.rstrip().removesuffix(b"}") + f', "_deep": {nested}}}\n'.encode()
    assert kind == "checkpoint"
    return data + f'{{"id": "easy-1-0005", "correct": {nested}}}\n'.encode()


def _wrong_types(kind: str, data: bytes) -> bytes:
    """The right syntax with the wrong types: a list or string where a mapping or a
    number belongs."""
    text = data.decode()
    if kind == "params":
        return (text.replace("benchmark: [arith, arith_hard]", "benchmark: arith")
                .replace("jobs: 3", "jobs: three").encode())  # fmt: skip
    if kind == "dvc.yaml":
        doc = yaml.safe_load(text)
        doc["stages"] = ["not", "a", "mapping"]
        return yaml.safe_dump(doc).encode()
    if kind == "dvc.lock":
        doc = yaml.safe_load(text)
        for i, entry in enumerate(doc["stages"].values()):
            entry["outs" if i % 2 else "params"] = "not a list" if i % 2 else [1, 2]
        return yaml.safe_dump(doc).encode()
    if kind == "manifest":
        doc = yaml.safe_load(text)
        next(iter(doc["cells"].values()))["examples_completed"] = "many"
        doc["git"] = ["not", "a", "mapping"]
        return yaml.safe_dump(doc, sort_keys=False).encode()
    if kind == "metrics":
        doc = json.loads(text)
        doc.update(accuracy="high", n="thirty", latency_ms="fast", categories=[1, 2])
        return json.dumps(doc).encode()
    if kind == "scores":
        lines = text.splitlines()
        fields = lines[3].split(",")
        fields[2:4] = ["yes", "high"]
        lines[3] = ",".join(fields)
        return ("\n".join(lines) + "\n").encode()
    assert kind == "checkpoint"
    return data + b'{"id": 5, "correct": "yes", "score": "high"}\n[1, 2]\n"text"\n'


def _truncated_rows(data: bytes) -> bytes:
    """The first half of the rows, cut at a line: finding 12's 149 of 300 items."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: 1 + (len(lines) - 1) // 2])


def _garbage(data: bytes) -> bytes:
    rng = random.Random(len(data))
    alphabet = b"abcxyz019 ,:;-{}[]&*!|>'\"#\n\t"
    return bytes(rng.choice(alphabet) for _ in range(max(len(data), 512)))


CORRUPTIONS: dict[str, Callable[[str, bytes], bytes]] = {
    "truncated": lambda kind, data: data[: len(data) // 2],
    "truncated_rows": lambda kind, data: _truncated_rows(data),
    "garbage": lambda kind, data: _garbage(data),
    "non_utf8": lambda kind, data: data[: len(data) // 2] + b"\xff\xfe" + data[len(data) // 2 :],
    "empty": lambda kind, data: b"",
    "alias_bomb": lambda kind, data: _alias_bomb(data),
    "deep": _deep,
    "wrong_types": _wrong_types,
}  # fmt: skip
#: Which corruptions make sense for which kind.
APPLIES: dict[str, list[str]] = {
    **{k: ["truncated", "garbage", "non_utf8", "empty", "alias_bomb", "deep", "wrong_types"]
       for k in YAML_KINDS},
    "metrics": ["truncated", "garbage", "non_utf8", "empty", "deep", "wrong_types"],
    "scores": ["truncated", "truncated_rows", "garbage", "non_utf8", "empty", "wrong_types"],
    "checkpoint": ["truncated", "garbage", "non_utf8", "empty", "deep", "wrong_types"],
    "cache": ["truncated", "garbage", "empty", "wrong_types"],
}  # fmt: skip
#: Corruptions after which no reader can make sense of the file (a truncated YAML file
#: may still parse, and wrong types may still be read around).
UNREADABLE = {"garbage", "non_utf8", "alias_bomb", "deep"}


def expectation(case: Case, name: str) -> str | None:
    """``warn`` (answers, naming the skipped file), ``fail`` (one line naming it), ``same``
    (the output of the undamaged project) or None (no claim)."""
    kind, corruption = case.kind, case.corruption
    if kind == "cache":
        return "same"
    # Readers of the working tree, and of HEAD when the damage is committed.
    reads = {"leaderboard", "significance", "list", "stats", "status", "run", "resume",
             "show2", "dry-run"} | ({"leaderboard@HEAD", "significance@HEAD", "diff-history"}
                                   if case.committed else {"diff"})  # fmt: skip
    if name not in reads:
        return None
    unreadable = corruption in UNREADABLE or (kind != "params" and corruption == "empty")
    if kind == "scores" and ("significance" in name or "leaderboard" in name):
        return "fail"  # finding 12: a damaged or truncated scores file is an error
    if kind == "metrics" and unreadable and ("leaderboard" in name or "diff" in name):
        return "warn"
    if kind == "manifest" and unreadable:
        return {"list": "warn", "stats": "warn", "run": "warn", "status": "fail",
                "show2": "fail", "resume": "fail"}.get(name)  # fmt: skip
    if kind == "params" and unreadable and name in ("dry-run", "run"):
        return "fail"
    return None


@dataclass(frozen=True)
class Case:
    kind: str
    corruption: str
    committed: bool

    def __str__(self) -> str:
        return f"{self.kind}-{self.corruption}-{'committed' if self.committed else 'workspace'}"


CASES = [
    Case(kind, corruption, committed)
    for kind, corruptions in APPLIES.items()
    for corruption in corruptions
    for committed in ([False, True] if kind in COMMITTED_KINDS else [False])
]


# --- running a case -----------------------------------------------------------------


def _tree_hashes(root: Path) -> dict[str, str]:
    """Every project file's hash, git's and evalledger's own state aside."""
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".git/", ".evalledger/", ".dvc/tmp/")) or not path.is_file():
            continue
        out[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def _damage_cache(path: Path, corruption: str) -> None:
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    if corruption == "wrong_types":
        db = sqlite3.connect(path)
        with db:
            # JSON of the wrong type for every kind, and of the wrong shape for the kinds
            # whose shape the cache knows (a forged but well-shaped value is not damage).
            db.execute("UPDATE parsed SET value = '[1, 2]' WHERE substr(oid, 1, 1) < '8'")
            db.execute("""UPDATE parsed SET value = '"text"' WHERE substr(oid, 1, 1) >= '8'""")
            db.execute("""UPDATE parsed SET value = '{"ids": 5, "rows": "x"}'
                          WHERE kind IN ('scores', 'summary', 'manifest')""")
        db.close()
    else:
        path.write_bytes(CORRUPTIONS[corruption]("cache", path.read_bytes()))


def _run(root: Path, args: list[str], subprocess_run: bool) -> tuple[int, str, float]:
    """Exit code, output (stdout and stderr) and seconds; 70 for an escaped exception."""
    started = time.perf_counter()
    if subprocess_run:
        try:
            proc = subprocess.run(["evalledger", "-C", str(root), *args], cwd=root,
                                  capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
        except subprocess.TimeoutExpired:
            return -1, f"hung past {TIMEOUT_S:.0f} s", time.perf_counter() - started
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - started
    try:
        code, out = _invoke(root, args)
    except Exception:  # what `evalledger` would report as an internal error (exit 70)
        return 70, "internal error\n" + traceback.format_exc(), time.perf_counter() - started
    return code, out, time.perf_counter() - started


def _problems(
    case: Case, name: str, rel: str, result: tuple[int, str, float], built: Built
) -> list[str]:
    code, out, seconds = result
    where = f"{name}: exit {code}"
    problems = []
    if code == 70 or code < 0 or "internal error" in out or "Traceback" in out:
        problems.append(f"{where}: {out.strip()[-600:]}")
    if seconds > TIMEOUT_S:
        problems.append(f"{where}: took {seconds:.1f} s")
    lines = [line for line in out.splitlines() if line.strip()]
    warnings = [line for line in lines if line.startswith("Warning:")]
    named = (rel, Path(rel).name)
    if code == 2:
        rest = [line for line in lines if not line.startswith("Warning:")]
        if len(rest) != 1 or not rest[0].startswith("Error: "):
            problems.append(f"{where}: not one error line: {rest}")
        elif case.kind != "params" and not any(n in rest[0] for n in named):
            problems.append(f"{where}: the error does not name {rel}: {rest[0]}")
    elif code not in (0, 1) or (code == 1 and name not in WRITING):
        problems.append(f"{where}: unexpected exit code: {out.strip()[-300:]}")
    expected = expectation(case, name)
    if expected == "fail" and code != 2:
        problems.append(f"{where}: should fail naming {rel}: {out.strip()[-300:]}")
    if expected == "warn" and (code != 0 or not any(rel in w for w in warnings)):
        problems.append(f"{where}: should answer with a warning naming {rel}: {lines[-3:]}")
    if expected == "same" and name in built.pristine and out != built.pristine[name]:
        problems.append(f"{where}: output differs over a damaged cache: {out[-300:]}")
    return problems


@contextmanager
def _copy(src: Path, dest: Path) -> Iterator[Path]:
    shutil.copytree(src, dest, symlinks=True)
    try:
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def readers(case: Case) -> list[str]:
    """The commands of a case: those that read the damaged version of the file."""
    names = READERS[case.kind]
    if case.committed:  # HEAD and the workspace hold the same damaged blob
        return [n for n in names if n != "diff"]
    return [n for n in names if not n.endswith("@HEAD") and n != "diff-history"]


def run_case(case: Case, built: Built, tmp: Path) -> list[str]:
    """Damage one file in a copy of the project; every reader's problems."""
    rel = target(built, case.kind)
    problems: list[str] = []
    with _copy(built.root, tmp / "damaged") as root:
        path = root / rel
        if case.kind == "cache":
            _damage_cache(path, case.corruption)
        else:
            path.write_bytes(CORRUPTIONS[case.corruption](case.kind, path.read_bytes()))
        if case.committed:
            git(root, "add", rel)
            git(root, "commit", "-qm", f"damage {rel}")
        damaged = path.read_bytes()
        before = _tree_hashes(root)
        names = readers(case)
        if case.corruption == "alias_bomb":
            # Subprocesses, so a hang is a timeout; each on its own copy, a few at once.
            copies = {name: tmp / f"copy-{name}" for name in names}
            for here in copies.values():
                shutil.copytree(root, here, symlinks=True)
            with ThreadPoolExecutor(max_workers=3) as pool:
                jobs = {n: pool.submit(_run, copies[n], command(built, n), True) for n in names}
            results = {name: (copies[name], job.result()) for name, job in jobs.items()}
        else:
            results = {}
            for name in names:  # readers share the copy; each writer gets one of its own
                here = root
                if name in WRITING:
                    here = tmp / f"copy-{name}"
                    shutil.copytree(root, here, symlinks=True)
                results[name] = (here, _run(here, command(built, name), False))
        for name, (here, result) in results.items():
            problems += _problems(case, name, rel, result, built)
            problems += _changes(case, name, rel, result[0], before, here, damaged)
    return problems


def _changes(
    case: Case, name: str, rel: str, code: int, before: dict[str, str], here: Path,
    damaged: bytes,
) -> list[str]:  # fmt: skip
    """Files a command changed that it should not have."""
    if name in WRITING and code in (0, 1):  # it ran: its own writes are expected
        if case.kind in REPAIRED_BY_RUN or case.kind == "cache":
            return []
        same = (here / rel).read_bytes() == damaged
        return [] if same else [f"{name}: it rewrote the damaged {rel}"]
    after = _tree_hashes(here)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [f"{name}: exit {code} yet changed {changed[:5]}"] if changed else []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_damaged_file_is_named_or_read_around(
    case: Case, built: Built, tmp_path: Path, reliability: Callable[..., None]
) -> None:
    problems = run_case(case, built, tmp_path)
    reliability("corruption", not problems)
    assert not problems, f"{case}:\n" + "\n".join(problems)


def _one_error_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], out[-500:]
    return errors[0]


def test_a_huge_params_yaml_is_refused_at_once(
    built: Built, tmp_path: Path, reliability: Callable[..., None]
) -> None:
    """Finding 15: a 50 MB params.yaml made `diff` run past 300 s and `run` past 400 s."""
    with _copy(built.root, tmp_path / "huge") as root:
        bulk = "".join(f"  key{i:07d}: value number {i}\n" for i in range((50 << 20) // 32))
        (root / "params.yaml").write_text(PARAMS + "bulk:\n" + bulk)
        size = (root / "params.yaml").stat().st_size
        assert size > 50 << 20
        before = _tree_hashes(root)
        results = {name: _run(root, command(built, name), True) for name in ("diff", "run")}
        ok = all(code == 2 and seconds < 5 for code, _, seconds in results.values())
        reliability("corruption", ok and _tree_hashes(root) == before)
        for code, out, seconds in results.values():
            assert code == 2 and seconds < 5, (code, seconds, out[-300:])
            line = _one_error_line(out)
            assert f"params.yaml is {size / 2**20:.1f} MiB, over the 1 MiB" in line
        assert _tree_hashes(root) == before


DISK_FULL = """\
set -u
mount -t tmpfs -o size=8m tmpfs "$1" || exit 90
cp -a "$2" "$1/proj"
cd "$1/proj"
avail=$(df -k --output=avail "$1" | tail -1)
head -c $(( (avail - $3) * 1024 )) /dev/zero > "$1/filler"
evalledger run --force --models solver,noisy 2>&1
echo "exit $?"
rm "$1/filler"
evalledger run --force --models solver,noisy 2>&1
echo "exit $?"
"""


@pytest.mark.parametrize("free_kib", [4, 28, 36, 40])
def test_a_full_disk_is_one_line_and_the_run_goes_on_once_freed(
    built: Built, tmp_path: Path, free_kib: int, reliability: Callable[..., None]
) -> None:
    """ENOSPC at several points of a run (before it starts, mid-cells, at the end)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs in a user namespace")
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = tmp_path / "full.sh"
    script.write_text(DISK_FULL)
    proc = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", str(script), str(mount),
         str(built.root), str(free_kib)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if proc.returncode == 90 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[-200:]}")
    out = proc.stdout + proc.stderr
    full, _, freed = out.partition("exit 1\n")
    ok = "Traceback" not in out and "internal error" not in out
    ok = ok and "Error: the disk is full" in full and freed.strip().endswith("exit 0")
    reliability("corruption", ok)
    assert "Traceback" not in out and "internal error" not in out, out
    assert "Error: the disk is full (No space left on device)" in _one_error_line(full)
    assert "4/4 cells completed" in freed and freed.strip().endswith("exit 0"), freed
