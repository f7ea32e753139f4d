"""Reading the ledger at any revision from git objects: snapshots, cache, file history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ledger_factory as lf
from conftest import git, invoke
from evalledger.errors import UnknownExecutionError, UnknownRevisionError
from evalledger.ledger.gitobjects import GitObjects
from evalledger.ledger.history import Ledger


def _accuracies(ledger: Ledger, rev: str) -> dict[str, float]:
    return {k: m["accuracy"] for k, m in ledger.snapshot(rev).metrics().items()}


def _expected(cells: dict[str, lf.Cell]) -> dict[str, float]:
    return {k: c.accuracy for k, c in sorted(cells.items())}


@pytest.mark.parametrize(
    ("rev", "name", "cells"),
    [
        ("HEAD", "v3", lf.V3),
        ("HEAD~1", "v2", lf.V2),
        ("HEAD~2", "v1", lf.V1),
        ("main", "v3", lf.V3),
        ("release", "v1", lf.V1),  # a branch
        ("v2", "v2", lf.V2),  # a tag
        ("full-sha-v2", "v2", lf.V2),
        ("myexp", "exp", lf.EXPERIMENT),  # a DVC experiment, by name
        ("workspace", None, lf.WORKSPACE),
    ],
)
def test_snapshot_at_every_kind_of_revision(
    built: lf.Built, rev: str, name: str | None, cells: dict[str, lf.Cell]
) -> None:
    if rev == "full-sha-v2":
        rev = built.shas["v2"]
    with Ledger(built.project) as ledger:
        snap = ledger.snapshot(rev)
        assert snap.commit == (built.shas[name] if name else None)
        assert list(snap.cells) == sorted(cells)
        assert _accuracies(ledger, rev) == _expected(cells)
        for key, cell in cells.items():
            assert snap.cells[key].axes == dict(
                zip(("model", "benchmark"), key.split("/"), strict=True)
            )
            assert (snap.cells[key].scores_oid is not None) == cell.with_scores
    if name is None:
        assert snap.label == "workspace"
    elif rev == built.shas["v2"]:
        assert snap.label == built.short("v2")
    else:
        assert snap.label == f"{rev} ({built.short(name)})"


def test_the_experiment_differs_from_its_baseline(built: lf.Built) -> None:
    with Ledger(built.project) as ledger:
        assert ledger.git.experiment_refs() == {
            "myexp": f"refs/exps/{built.shas['v1'][:2]}/{built.shas['v1'][2:]}/myexp"
        }
        assert _accuracies(ledger, "myexp")["alpha/qa"] == 36 / 40
        assert _accuracies(ledger, "v1")["alpha/qa"] == 20 / 40


def test_identical_metrics_files_of_two_cells_are_both_read(built: lf.Built) -> None:
    # At v2, beta/qa and gamma/qa both scored 22/40: their metrics JSON files are the same
    # bytes, so the same git blob. Each cell must still get its metrics.
    with Ledger(built.project) as ledger:
        snap = ledger.snapshot("v2")
        assert snap.cells["beta/qa"].metrics_oid == snap.cells["gamma/qa"].metrics_oid
        metrics = snap.metrics()
        assert set(metrics) == set(lf.V2)
        assert metrics["beta/qa"]["accuracy"] == metrics["gamma/qa"]["accuracy"] == 0.55


def test_params_scores_and_summaries_at_a_revision(built: lf.Built) -> None:
    with Ledger(built.project) as ledger:
        v1, v2 = ledger.snapshot("v1"), ledger.snapshot("v2")
        assert v1.params["models"]["alpha"]["seed"] == 1
        assert v2.params["models"]["alpha"]["seed"] == 2
        assert v1.axis_names == ["model", "benchmark"]

        table = v1.scores("alpha/qa")
        assert table is not None
        assert table.ids == [f"qa-{i:03d}" for i in range(40)]
        assert table.columns["correct"] == [float(v) for v in lf.V1["alpha/qa"].values()]
        assert table.cluster is None and table.errored == 0

        math_t = v1.scores("alpha/math")
        assert math_t is not None
        assert (len(math_t.ids), math_t.errored) == (16, 4)  # errored rows are not scored

        clustered = v1.scores("beta/math")
        assert clustered is not None and clustered.cluster is not None
        assert clustered.cluster[:5] == ["c0", "c0", "c0", "c0", "c1"]

        assert v2.scores("gamma/math") is None  # a cell without a scores CSV
        assert v2.scores("beta/math") is None  # removed at v2

        summary = v1.summaries(["beta/math"])["beta/math"]["correct"]
        assert summary["n"] == 20 and summary["mean"] == pytest.approx(0.6)
        assert summary["clusters"] == 5
        assert summary["se_clustered"] == pytest.approx(1.2**0.5 / 20)


def test_reading_never_changes_the_work_tree(fresh: lf.Built) -> None:
    root = fresh.root
    (root / "notes.txt").write_text("an untracked file\n")  # more uncommitted changes
    (root / "params.yaml").write_text(lf.PARAMS_V2 + "# edited\n")
    status = git(root, "status", "--porcelain")
    assert " M params.yaml" in status and "?? notes.txt" in status
    assert " M metrics/alpha/math.json" in status
    refs = git(root, "for-each-ref")
    files = lf.work_tree_state(root)
    index = (root / ".git" / "index").stat().st_mtime_ns
    head = git(root, "rev-parse", "HEAD")

    with Ledger(fresh.project) as ledger:
        for rev in ("HEAD", "HEAD~1", "v1", "release", "myexp", fresh.shas["v2"], "workspace"):
            snap = ledger.snapshot(rev)
            snap.metrics()
            snap.summaries()
            snap.score_tables(list(snap.cells))
            snap.manifests()
        ledger.executions()
        ledger.file_history("metrics/gamma/qa.json")
    for args in (
        ["diff"],
        ["diff", "v1", "v2", "--md"],
        ["diff", "v1", "myexp", "--json"],
        ["leaderboard", "--rev", "v1", "--rev", "HEAD"],
        ["list", "-v"],
        ["show", "aaaa0001"],
        ["show", "eeee0005"],
        ["stats"],
    ):
        assert invoke(fresh.project, *args).exit_code == 0, args

    # The index and refs were not written (checked before `git status` refreshes them).
    assert (root / ".git" / "index").stat().st_mtime_ns == index
    assert git(root, "for-each-ref") == refs
    assert git(root, "rev-parse", "HEAD") == head
    assert lf.work_tree_state(root) == files  # no file's size or mtime changed
    assert git(root, "status", "--porcelain") == status


def test_the_parsed_cache(fresh: lf.Built, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = fresh.root / ".evalledger" / "cache"
    revs = ("v1", "v2", "v3", "workspace")

    def read_all(ledger: Ledger) -> dict[str, object]:
        out: dict[str, object] = {}
        for rev in revs:
            snap = ledger.snapshot(rev)
            tables = snap.score_tables(list(snap.cells))
            out[rev] = (
                snap.params,
                snap.metrics(),
                snap.summaries(),
                {k: t.to_json() for k, t in tables.items()},
                {k: m.model_dump() for k, m in snap.manifests().items()},
            )
        return out

    assert not cache_dir.exists()
    with Ledger(fresh.project) as ledger:
        first = read_all(ledger)
    assert (cache_dir / "parsed-v2.sqlite").is_file()
    assert ".evalledger" not in git(fresh.root, "status", "--porcelain")  # git-ignored

    # A second reader is served from the cache: reading git blobs is not needed.
    def no_blobs(self: GitObjects, oids: object) -> dict[str, bytes]:
        raise AssertionError("read a git blob although the cache holds it")

    with monkeypatch.context() as m:
        m.setattr(GitObjects, "read_blobs", no_blobs)
        with Ledger(fresh.project) as ledger:
            assert read_all(ledger) == first

    # Without the cache, and after deleting it, the same results.
    shutil.rmtree(cache_dir)
    with Ledger(fresh.project, use_cache=False) as ledger:
        assert read_all(ledger) == first
    assert not cache_dir.exists()
    with Ledger(fresh.project) as ledger:
        assert read_all(ledger) == first
    assert (cache_dir / "parsed-v2.sqlite").is_file()

    # A cached workspace file is never stale: new bytes are a new blob id.
    cell = lf.Cell("math", 16, set(range(16)), errored=4)
    (fresh.root / "metrics" / "alpha" / "math.json").write_text(json.dumps(cell.metrics()))
    with Ledger(fresh.project) as ledger:
        assert ledger.snapshot().metrics(["alpha/math"])["alpha/math"]["accuracy"] == 1.0


def test_a_damaged_cache_is_bypassed(fresh: lf.Built) -> None:
    cache_dir = fresh.root / ".evalledger" / "cache"
    with Ledger(fresh.project) as ledger:
        expected = ledger.snapshot("v1").metrics()
    (cache_dir / "parsed-v2.sqlite").write_bytes(b"this is not a database")
    for extra in cache_dir.glob("parsed-v2.sqlite-*"):
        extra.unlink()
    with Ledger(fresh.project) as ledger:
        assert ledger.snapshot("v1").metrics() == expected


def test_file_history_returns_every_committed_version(built: lf.Built) -> None:
    s = built.shas
    with Ledger(built.project) as ledger:
        history = ledger.file_history("metrics/gamma/qa.json")
        assert [c for c, _, _ in history] == [s["v3"], s["v2"], s["v1"]]
        for commit, when, oid in history:
            assert oid == git(built.root, "rev-parse", f"{commit}:metrics/gamma/qa.json").strip()
            assert when == int(git(built.root, "log", "-1", "--format=%ct", commit))
        # alpha/math never changed after v1; beta/math was deleted in v2 (not a version).
        assert [c for c, _, _ in ledger.file_history("metrics/alpha/math.json")] == [s["v1"]]
        assert [c for c, _, _ in ledger.file_history("metrics/beta/math.json")] == [s["v1"]]
        # From the experiment's ref: its own commit, then the baseline's.
        exp = ledger.file_history("metrics/alpha/qa.json", ["myexp"])
        assert [c for c, _, _ in exp] == [s["exp"], s["v1"]]
        assert ledger.file_history("metrics/nope.json") == []
        with pytest.raises(UnknownRevisionError) as err:
            ledger.file_history("metrics/alpha/qa.json", ["mian"])
        assert err.value.hint == "did you mean main?"


def test_executions_across_history_and_workspace(built: lf.Built) -> None:
    s = built.shas
    with Ledger(built.project) as ledger:
        infos = {i.execution_id: i for i in ledger.executions()}
        assert list(infos) == [lf.EXEC_A, lf.EXEC_B, lf.EXEC_C, lf.EXEC_D, lf.EXEC_E]
        expected = {
            lf.EXEC_A: (s["v1"], s["v1"], True, built.short("v1")),
            lf.EXEC_B: (s["v1"], s["v1"], False, f"{built.short('v1')} (deleted)"),
            lf.EXEC_C: (s["v2"], s["v2"], True, built.short("v2")),
            lf.EXEC_D: (s["v3"], s["v3"], True, built.short("v3")),
            lf.EXEC_E: (None, None, True, "workspace"),
        }
        for exec_id, (commit, first, in_ws, where) in expected.items():
            info = infos[exec_id]
            assert (info.commit, info.first_commit, info.in_workspace, info.where) == (
                commit, first, in_ws, where,
            )  # fmt: skip
        assert ledger.manifest(infos[lf.EXEC_B]).status.value == "partial"
        # B re-ran alpha/math after A, so at v1 A's alpha/math is superseded.
        results = ledger.results(infos[lf.EXEC_A])
        assert results["alpha/math"] is None
        assert results["alpha/qa"] is not None and results["alpha/qa"]["accuracy"] == 0.5
        assert ledger.results(infos[lf.EXEC_E])["alpha/math"]["accuracy"] == 14 / 16  # type: ignore[index]
        assert ledger.snapshot("v3").manifest_ids == [lf.EXEC_A, lf.EXEC_C, lf.EXEC_D]


def test_find_execution_by_part_and_close_matches(built: lf.Built) -> None:
    with Ledger(built.project) as ledger:
        assert ledger.find_execution("cccc0003").execution_id == lf.EXEC_C
        assert ledger.find_execution("01-04").execution_id == lf.EXEC_D
        with pytest.raises(UnknownExecutionError, match="ambiguous"):
            ledger.find_execution("2026-01")
        with pytest.raises(UnknownExecutionError) as err:
            ledger.find_execution("exec_2026-01-01_100000_aaaa0009")
        assert err.value.hint is not None
        assert err.value.hint.startswith(f"did you mean {lf.EXEC_A}")


def test_unknown_revisions_suggest_close_names(fresh: lf.Built) -> None:
    with Ledger(fresh.project) as ledger:
        with pytest.raises(UnknownRevisionError) as err:
            ledger.snapshot("mian")
        assert "unknown revision 'mian'" in err.value.message
        assert err.value.hint == "did you mean main?"
        with pytest.raises(UnknownRevisionError) as err:
            ledger.snapshot("myexpp")
        assert err.value.hint is not None and "myexp" in err.value.hint
    # Two experiments with one name (under two baselines) are ambiguous.
    v2 = fresh.shas["v2"]
    git(fresh.root, "update-ref", f"refs/exps/{v2[:2]}/{v2[2:]}/myexp", fresh.shas["exp"])
    with Ledger(fresh.project) as ledger, pytest.raises(UnknownRevisionError, match="names 2 DVC"):
        ledger.snapshot("myexp")


# --- damaged files (issue 10): skipped with a warning where the rest stands, else named ---


def _damage(root: Path, rel: str, data: bytes, *, commit: bool = False) -> None:
    (root / rel).write_bytes(data)
    if commit:
        git(root, "add", rel)
        git(root, "commit", "-qm", f"damage {rel}")


@pytest.mark.parametrize("commit", [False, True], ids=["workspace", "committed"])
def test_a_damaged_metrics_file_is_left_out_with_a_warning(fresh: lf.Built, commit: bool) -> None:
    from evalledger.safeload import CorruptFileWarning

    _damage(fresh.root, "metrics/alpha/qa.json", b'{"accuracy": 0.5, "n": ', commit=commit)
    rev = "HEAD" if commit else "workspace"
    where = "metrics/alpha/qa.json" + (" at HEAD (" if commit else " ")
    with Ledger(fresh.project) as ledger, pytest.warns(CorruptFileWarning) as caught:
        found = _accuracies(ledger, rev)
    assert "alpha/qa" not in found and found["beta/qa"] == lf.V3["beta/qa"].accuracy
    (message,) = {str(w.message) for w in caught}
    assert message.startswith(f"invalid JSON in {where.strip()}") or where in message
    assert "left out" in message and "git checkout" in message


def test_a_truncated_scores_file_is_refused_against_its_metrics_n(fresh: lf.Built) -> None:
    from evalledger.errors import CorruptFileError

    path = fresh.root / "metrics" / "alpha" / "qa.scores.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:21]))  # the header and 20 of 40 items, cut at a line
    expected = (
        "metrics/alpha/qa.scores.csv has 20 item rows but metrics/alpha/qa.json counts n=40: "
        "the scores file is truncated"
    )
    with Ledger(fresh.project) as ledger:
        snap = ledger.snapshot()
        for read in (snap.score_tables, snap.summaries):
            with pytest.raises(CorruptFileError) as err:
                read(["alpha/qa", "beta/qa"])
            assert err.value.message == expected
            assert "git checkout -- metrics/alpha/qa.scores.csv" in (err.value.hint or "")
        # Errored items are rows too: alpha/math's 16 scored and 4 errored make n=20.
        assert snap.score_tables(["alpha/math"])["alpha/math"].rows == 20
        assert snap.summaries(["alpha/math"])["alpha/math"]["correct"]["n"] == 16


def test_a_scores_file_cut_mid_line_is_named(fresh: lf.Built) -> None:
    from evalledger.errors import CorruptFileError

    path = fresh.root / "metrics" / "beta" / "qa.scores.csv"
    data = path.read_bytes()
    _damage(fresh.root, "metrics/beta/qa.scores.csv", data[: len(data) // 2], commit=True)
    with (
        Ledger(fresh.project) as ledger,
        pytest.raises(CorruptFileError, match=r"beta/qa\.scores\.csv at HEAD \(\w+\)"),
    ):
        ledger.snapshot("HEAD").summaries()


def test_a_damaged_manifest_is_refused_or_skipped_as_the_reader_needs(fresh: lf.Built) -> None:
    from evalledger.errors import CorruptFileError
    from evalledger.ledger.listing import list_executions
    from evalledger.safeload import CorruptFileWarning

    rel = f"runs/{lf.EXEC_D}/manifest.yaml"
    bomb = b"a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
    _damage(fresh.root, rel, bomb)
    with Ledger(fresh.project) as ledger:
        snap = ledger.snapshot()
        with pytest.raises(CorruptFileError, match="uses a YAML alias"):
            snap.manifests()
        with pytest.raises(CorruptFileError):  # deleting by owner must know every owner
            snap.owners()
        with pytest.raises(CorruptFileError, match=rel):
            ledger.manifest(ledger.find_execution(lf.EXEC_D))
        with pytest.warns(CorruptFileWarning, match=rel):
            ids = [r.info.execution_id for r in list_executions(ledger)]
        assert lf.EXEC_D not in ids and lf.EXEC_C in ids
        with pytest.warns(CorruptFileWarning, match=rel):
            assert lf.EXEC_D not in snap.manifests(skip_damaged=True)


def test_a_damaged_params_yaml_at_a_revision(fresh: lf.Built) -> None:
    from evalledger.errors import CorruptFileError
    from evalledger.safeload import CorruptFileWarning

    _damage(fresh.root, "params.yaml", b"axes: {model: [a\n", commit=True)
    with Ledger(fresh.project) as ledger:
        snap = ledger.snapshot("HEAD")
        with pytest.raises(CorruptFileError, match=r"invalid YAML in params\.yaml at HEAD"):
            _ = snap.params
        with pytest.warns(CorruptFileWarning, match="its cells are read without its axes"):
            assert list(snap.cells) == sorted(lf.V3)  # axes by position: model/benchmark


def test_cached_values_of_the_wrong_shape_are_parsed_again(fresh: lf.Built) -> None:
    import sqlite3

    with Ledger(fresh.project) as ledger:
        expected = ledger.snapshot("v1").summaries(), ledger.snapshot("v1").manifests()
    db = sqlite3.connect(fresh.root / ".evalledger" / "cache" / "parsed-v2.sqlite")
    with db:
        db.execute("""UPDATE parsed SET value = '{"n": 1}' WHERE kind != 'metrics'""")
        db.execute("UPDATE parsed SET value = 'not json' WHERE kind = 'metrics'")
    db.close()
    with Ledger(fresh.project) as ledger:
        snap = ledger.snapshot("v1")
        assert (snap.summaries(), snap.manifests()) == expected
        assert snap.metrics()["alpha/qa"]["accuracy"] == lf.V1["alpha/qa"].accuracy
