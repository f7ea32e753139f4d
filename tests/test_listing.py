"""`evalledger list`, `show` and `stats` over executions across git history."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ledger_factory as lf
from conftest import git, invoke
from evalledger.manifest import CellStatus

ALL = [lf.EXEC_E, lf.EXEC_D, lf.EXEC_C, lf.EXEC_B, lf.EXEC_A]  # newest first


def _table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


def _executions(text: str) -> list[list[str]]:
    """The executions table: the rows before the DVC experiments section."""
    rows = _table(text)
    return rows[: rows.index([""])] if [""] in rows else rows


def test_list_newest_first_with_commits(built: lf.Built) -> None:
    out = invoke(built.project, "list")
    assert out.exit_code == 0
    rows = _executions(out.stdout)
    assert rows[0] == ["execution", "created (UTC)", "status", "done", "failed", "commit"]
    v1, v2, v3 = built.short("v1"), built.short("v2"), built.short("v3")
    exps = _table(out.stdout)[len(rows) + 1 :]
    assert exps[0] == ["DVC experiments"]
    assert exps[1] == ["experiment", "baseline", "created (UTC)", "cells", "changed params",
                       "runs"]  # fmt: skip
    assert exps[2][:2] == ["myexp", v1] and exps[2][3:] == ["5", "(same as baseline)", "-"]
    assert _executions(invoke(built.project, "list", "--no-experiments").stdout) == rows
    assert "DVC experiments" not in invoke(built.project, "list", "-E").stdout
    assert rows[1:] == [
        [lf.EXEC_E, "2026-01-05 10:00:00", "completed", "1/1", "0", "workspace"],
        [lf.EXEC_D, "2026-01-04 10:00:00", "completed", "1/1", "0", v3],
        [lf.EXEC_C, "2026-01-03 10:00:00", "completed", "4/4", "0", v2],
        [lf.EXEC_B, "2026-01-02 10:00:00", "partial", "1/2", "1", f"{v1} (deleted)"],
        [lf.EXEC_A, "2026-01-01 10:00:00", "completed", "5/5", "0", v1],
    ]


def test_list_limit_verbose_and_json(built: lf.Built) -> None:
    one = _executions(invoke(built.project, "list", "-n", "1").stdout)
    assert [r[0] for r in one[1:]] == [lf.EXEC_E]
    two = _executions(invoke(built.project, "list", "--limit", "2").stdout)
    assert [r[0] for r in two[1:]] == [lf.EXEC_E, lf.EXEC_D]

    verbose = _executions(invoke(built.project, "list", "-v").stdout)
    assert verbose[0][-3:] == ["models", "benchmarks", "command"]
    by_id = {r[0]: r for r in verbose[1:]}
    assert by_id[lf.EXEC_A][-3:] == ["alpha, beta, gamma", "qa, math", "evalledger run"]
    assert by_id[lf.EXEC_B][-3:] == ["alpha, gamma", "math, qa", "evalledger run -S run.jobs=1"]
    assert by_id[lf.EXEC_D][-3:] == ["gamma", "qa", "evalledger run"]

    everything = json.loads(invoke(built.project, "list", "--json").stdout)
    assert [d["kind"] for d in everything] == ["execution"] * 5 + ["dvc-experiment"]
    assert everything[-1]["name"] == "myexp" and everything[-1]["baseline"] == built.shas["v1"]
    data = everything[:5]
    assert [d["execution_id"] for d in data] == ALL
    b = data[3]
    assert (b["status"], b["cells"], b["completed"], b["failed"]) == ("partial", 2, 1, 1)
    assert (b["commit"], b["in_workspace"], b["overrides"]) == (
        built.shas["v1"], False, ["run.jobs=1"],
    )  # fmt: skip
    assert (data[0]["commit"], data[0]["in_workspace"]) == (None, True)
    assert [d["commit"] for d in data[1:3]] == [built.shas["v3"], built.shas["v2"]]
    assert data[4]["created_at"] == "2026-01-01T10:00:00+00:00"
    assert json.loads(invoke(built.project, "list", "--json", "-n", "1").stdout)[0] == data[0]
    assert json.loads(invoke(built.project, "list", "--json", "-E").stdout) == data


def test_show_prints_config_provenance_and_cell_metrics(built: lf.Built) -> None:
    out = invoke(built.project, "show", "aaaa0001")  # a unique part of the ID
    assert out.exit_code == 0
    lines = out.stdout.splitlines()
    assert lines[0] == f"{lf.EXEC_A}  completed  5/5 cells completed"
    assert lines[1].startswith("created   2026-01-01 10:00:00 UTC")
    assert lines[2] == "command   evalledger run"
    assert lines[3] == f"git       {built.shas['init'][:10]} on main"
    assert lines[4] == "code      c0dec0dec0dec0de"
    assert lines[5] == f"results   read at {built.short('v1')}"
    assert lines[6] == "config:"
    config = out.stdout[out.stdout.index("config:\n") + 8 : out.stdout.index("\ncell ")]
    assert "    alpha:\n      adapter: baseline" in config and "      seed: 1\n" in config
    rows = {r[0]: r for r in _table(out.stdout[out.stdout.index("\ncell ") + 1 :])}
    assert rows["cell"][:4] == ["cell", "status", "items", "accuracy"]
    assert rows["alpha/qa"][:5] == ["alpha/qa", "completed", "40/40", "0.5", "0.5"]
    assert rows["beta/qa"][:4] == ["beta/qa", "completed", "40/40", "0.75"]
    assert rows["beta/math"][:4] == ["beta/math", "completed", "20/20", "0.6"]
    # Execution B re-ran alpha/math later: A's result there is superseded.
    assert rows["alpha/math"] == ["alpha/math", "superseded", "16/20"]


def test_show_reads_results_where_the_execution_lives(built: lf.Built) -> None:
    deleted = invoke(built.project, "show", "bbbb0002")
    assert deleted.exit_code == 0
    assert f"results   read at {built.short('v1')}" in deleted.stdout
    assert "overrides run.jobs=1" in deleted.stdout
    rows = {r[0]: r for r in _table(deleted.stdout[deleted.stdout.index("\ncell ") + 1 :])}
    assert rows["alpha/math"][:4] == ["alpha/math", "completed", "16/20", "0.75"]
    assert rows["alpha/math"][7] == "4"  # errors
    assert rows["gamma/qa"] == ["gamma/qa", "failed", "0/40"]

    ws = invoke(built.project, "show", "eeee")
    assert "results   read at workspace" in ws.stdout
    assert f"git       {built.shas['v3'][:10]} on main" in ws.stdout
    assert re.search(r"alpha/math\s+completed\s+16/20\s+0\.875", ws.stdout)

    data = json.loads(invoke(built.project, "show", "cccc0003", "--json").stdout)
    assert data["execution_id"] == lf.EXEC_C
    assert data["commit"] == data["first_commit"] == built.shas["v2"]
    assert data["revision"] == built.short("v2")
    assert data["manifest"]["config"]["models"]["alpha"]["seed"] == 2
    assert {k: v["accuracy"] for k, v in data["results"].items()} == {
        "alpha/qa": 0.725, "beta/qa": 0.55, "gamma/qa": 0.55, "gamma/math": 0.625,
    }  # fmt: skip


def test_stats_counts(built: lf.Built) -> None:
    out = invoke(built.project, "stats", "--json")
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    # A: 40+40+40+16+20, B: 16 (its failed cell is not counted), C: 3*40+48, D: 40, E: 16
    assert data["items_scored"] == 156 + 16 + 168 + 40 + 16
    assert data["items_errored"] == 4 + 4 + 2 + 0 + 4
    assert data["executions"] == 5
    assert data["executions_by_status"] == {"completed": 4, "partial": 1}
    assert data["cell_runs"] == 5 + 2 + 4 + 1 + 1
    assert data["cell_runs_by_status"] == {"completed": 12, "failed": 1}
    assert (data["cells_in_workspace"], data["models"], data["benchmarks"]) == (5, 3, 2)
    # Commits with results: v1, v2, v3 (init only adds the folders' .gitkeep files).
    assert data["ledger_commits"] == 3
    assert data["sizes"]["runs"]["files"] == 1 + 4  # .gitkeep; A, C, D, E (B was deleted)
    assert data["sizes"]["metrics"]["files"] == 1 + 5 + 4  # .gitkeep, metrics, score CSVs
    text = invoke(built.project, "stats").stdout
    assert "executions      5 (4 completed, 1 partial)" in text
    assert "cell runs       13 (12 completed, 1 failed)" in text
    assert "workspace       5 cells: 3 models x 2 benchmarks" in text


def test_unknown_execution_is_one_line_naming_the_closest(built: lf.Built) -> None:
    out = invoke(built.project, "show", "exec_2026-01-01_100000_aaaa0009")
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith(
        f"Error: unknown execution 'exec_2026-01-01_100000_aaaa0009'; did you mean {lf.EXEC_A}"
    )
    out = invoke(built.project, "show", "2026-01")
    assert out.exit_code == 2 and out.stderr.count("\n") == 1
    assert "is ambiguous" in out.stderr and lf.EXEC_A in out.stderr
    out = invoke(built.project, "show", "zzz")
    assert (out.exit_code, out.stderr) == (
        2,
        "Error: unknown execution 'zzz'; see `evalledger list`\n",
    )


def test_unknown_revision_suggests_the_branch(built: lf.Built) -> None:
    out = invoke(built.project, "diff", "mian")
    assert (out.exit_code, out.stdout) == (2, "")
    assert out.stderr == "Error: unknown revision 'mian'; did you mean main?\n"


EXEC_F = "exec_2026-01-06_100000_ffff0006"
EXEC_G = "exec_2026-01-07_100000_99990007"


def test_all_branches_lists_executions_that_only_other_refs_hold(
    built: lf.Built, tmp_path: Path
) -> None:
    copy = lf.copy_ledger(built, tmp_path / "proj")
    root, done = copy.root, CellStatus.COMPLETED
    # F is committed on branch feature (made in a worktree: main's workspace is dirty),
    # G only on a remote-tracking branch, as after `git fetch` of a teammate's work.
    tree = tmp_path / "feature"
    git(root, "worktree", "add", "-q", "-b", "feature", str(tree), "v3")
    cells = {**lf.V3, "beta/qa": lf.Cell("qa", lf.QA_N, set(range(0, 33)))}
    lf.write_cells(tree, cells)
    lf.write_execution(tree, EXEC_F, 6, {"beta/qa": (cells["beta/qa"], done)},
                       lf.PARAMS_V2, copy.shas["v3"])  # fmt: skip
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "feature results")
    lf.write_execution(tree, EXEC_G, 7, {"beta/qa": (cells["beta/qa"], done)},
                       lf.PARAMS_V2, copy.shas["v3"])  # fmt: skip
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "teammate results")
    teammate = git(tree, "rev-parse", "HEAD").strip()
    git(tree, "reset", "-q", "--hard", "HEAD~1")
    git(root, "update-ref", "refs/remotes/origin/teammate", teammate)
    feature = git(root, "rev-parse", "feature").strip()

    head_only = [r[0] for r in _executions(invoke(copy.project, "list", "-E").stdout)[1:]]
    assert head_only == [lf.EXEC_E, lf.EXEC_D, lf.EXEC_C, lf.EXEC_B, lf.EXEC_A]

    out = invoke(copy.project, "list", "-a", "-E")
    assert out.exit_code == 0
    rows = _executions(out.stdout)[1:]
    assert [r[0] for r in rows] == [EXEC_G, EXEC_F, *head_only]
    assert rows[0][-1] == f"{teammate[:7]} (on origin/teammate)"
    assert rows[1][-1] == f"{feature[:7]} (on feature)"
    # HEAD's view of its own executions does not change: B stays deleted on main.
    assert rows[2:] == _executions(invoke(copy.project, "list", "-E").stdout)[1:]
    data = json.loads(invoke(copy.project, "list", "--all-branches", "-E", "--json").stdout)
    assert [(d["execution_id"], d["ref"]) for d in data[:3]] == [
        (EXEC_G, "origin/teammate"), (EXEC_F, "feature"), (lf.EXEC_E, None),
    ]  # fmt: skip

    # `show` finds an execution on another branch and reads its results there.
    shown = invoke(copy.project, "show", "ffff0006")
    assert shown.exit_code == 0, shown.output
    assert f"results   read at {feature[:7]}" in shown.stdout
    assert re.search(r"beta/qa\s+completed\s+40/40\s+0\.825", shown.stdout)
    # `delete` acts on the workspace, so it names the branch to check out instead.
    refused = invoke(copy.project, "delete", "ffff0006", "--yes")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "is committed on feature" in refused.stderr and "check out feature" in refused.stderr
    assert (tree / "runs" / EXEC_F / "manifest.yaml").is_file()
