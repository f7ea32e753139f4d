"""``evalledger report`` opened in real headless Chromium (Debian's, driven by playwright).

A ledger with two commits: a ``good`` model that answers right, and a ``hostile`` one
whose wrong answers carry script and HTML injections. The page must load from
``file://`` with no console error and no network request, draw marks in every chart,
narrow the item table when filtered, list exactly the items whose correctness differs
between the two models (checked against the scores files), and never run the
injected code.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import dvc, git, invoke, make_project
from evalledger.project import Project

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
XSS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror=window.__xss=1>',
]
MODEL = """\
INJECTED = {injected!r}


def answer(prompt, item):
    \"\"\"Right, except every third item: a wrong answer that tries to run code.\"\"\"
    if int(item.id.rsplit("-", 1)[1]) % 3 == 0:
        return "The answer is -1. " + INJECTED
    return f"The answer is {{item.target}}."
""".format(injected=" ".join(XSS))
PARAMS = """\
axes:
  model: [good, hostile]
  benchmark: [arith]
models:
  good: {{adapter: baseline, strategy: solver}}
  hostile: {{adapter: python, callable: "hostile_model:answer", path: {path}}}
benchmarks:
  arith: {{loader: arith, n_items: {n}, seed: 1, difficulty: easy}}
"""


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    base = tmp_path_factory.mktemp("report")
    (base / "code").mkdir()
    (base / "code" / "hostile_model.py").write_text(MODEL)
    project = make_project(base / "proj", PARAMS.format(path=base / "code", n=24))
    for n in (24, 30):  # two commits of the ledger
        (project.root / "params.yaml").write_text(PARAMS.format(path=base / "code", n=n))
        result = invoke(project, "run", "--commit")
        assert result.exit_code == 0, result.output
    out = base / "report.html"
    result = invoke(project, "report", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] == out.stat().st_size
    return project, out


@pytest.fixture(scope="module")
def browser(reported: tuple[Project, Path]) -> Iterator[Any]:
    """Chromium, started after the ledger is built (playwright's sync API holds an event
    loop, and `evalledger run` needs its own)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(
    reported: tuple[Project, Path], browser: Any
) -> Iterator[tuple[Any, dict[str, list[str]]]]:
    _, out = reported
    page = browser.new_page()
    seen: dict[str, list[str]] = {"errors": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(out.as_uri())
    page.wait_for_function(
        "document.querySelectorAll('#chart-heatmap svg .mark-rect path').length > 0",
        timeout=20_000,
    )
    yield page, seen
    page.close()


def _correct(project: Project, model: str, rev: str | None = None) -> dict[str, bool]:
    """Item id -> right, from ``model``'s arith scores file in the workspace or at ``rev``."""
    rel = f"metrics/{model}/arith.scores.csv"
    text = (
        (project.root / rel).read_text()
        if rev is None
        else git(project.root, "show", f"{rev}:{rel}")
    )
    return {r["id"]: r["correct"] == "1" for r in csv.DictReader(text.splitlines())}


def _embedded(html: str, block: str) -> Any:
    """The JSON of the page's ``<script id="report-data">`` (or ``report-specs``) block."""
    marker = f'id="{block}" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def test_the_page_loads_offline_without_errors_and_draws_every_chart(page: Any) -> None:
    pg, seen = page
    assert seen["errors"] == []
    assert [u for u in seen["requests"] if not u.startswith("file://")] == []
    for chart in ("leaderboard", "heatmap"):
        marks = pg.eval_on_selector_all(f"#chart-{chart} svg .mark-rect path", "e => e.length")
        assert marks >= 2, chart  # a bar (or a cell) per model
    cells = pg.eval_on_selector_all("#cells tbody tr", "rows => rows.length")
    assert cells == 2
    assert pg.text_content("#totals") == "2 cells, 60 items (0 errored), cost 0.0"


def test_the_item_filter_narrows_the_rows(page: Any, reported: tuple[Project, Path]) -> None:
    pg, _ = page
    pg.click("button[data-view=items]")
    assert pg.text_content("#item-count") == "60 of 60 rows"
    pg.check("#item-wrong")
    wrong = [r for r in _correct(reported[0], "hostile").values() if not r]
    assert pg.text_content("#item-count") == f"{len(wrong)} of 60 rows"
    pg.uncheck("#item-wrong")
    pg.fill("#item-search", "easy-1-0007")
    assert pg.text_content("#item-count") == "2 of 60 rows"  # that item of both models
    rows = pg.eval_on_selector_all(
        "#item-table tbody tr td:nth-child(2)", "t => t.map(x => x.textContent)"
    )
    assert rows == ["easy-1-0007", "easy-1-0007"]


def test_flips_are_exactly_the_items_whose_correctness_differs(
    page: Any, reported: tuple[Project, Path]
) -> None:
    pg, _ = page
    project, _ = reported
    good, hostile = _correct(project, "good"), _correct(project, "hostile")
    expected = sorted(i for i in good if good[i] != hostile[i])
    assert expected  # the hostile model is wrong on every third item
    pg.click("button[data-view=flips]")
    pg.select_option("#flip-a", "good")
    pg.select_option("#flip-b", "hostile")
    ids = pg.eval_on_selector_all(
        "#flip-table tbody tr td:nth-child(2)", "t => t.map(x => x.textContent)"
    )
    assert sorted(ids) == expected
    assert pg.text_content("#flip-count") == f"{len(expected)} flips"


def test_side_by_side_pairs_any_two_models_at_any_two_revisions(
    browser: Any, reported: tuple[Project, Path], tmp_path: Path
) -> None:
    project, _ = reported
    out = tmp_path / "two-revisions.html"
    result = invoke(project, "report", "HEAD", "HEAD~1", "-o", str(out))
    assert result.exit_code == 0, result.output
    old = git(project.root, "rev-parse", "--short=7", "HEAD~1").strip()
    before = _correct(project, "hostile", "HEAD~1")
    good = _correct(project, "good")
    shared = sorted(set(good) & set(before))
    assert len(shared) == 24 < len(good)  # HEAD~1 had 24 items, HEAD has 30
    flips = sorted(i for i in shared if good[i] != before[i])
    assert flips
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(out.as_uri())
    pg.click("button[data-view=flips]")
    options = pg.eval_on_selector_all("#flip-a option", "o => o.map(x => x.textContent)")
    assert options == ["good", "hostile", f"good @ HEAD~1 ({old})", f"hostile @ HEAD~1 ({old})"]
    pg.select_option("#flip-a", "good")
    pg.select_option("#flip-b", f"hostile @ HEAD~1 ({old})")
    rows = pg.eval_on_selector_all(
        "#flip-table tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.textContent))",
    )
    assert sorted(r[1] for r in rows) == flips
    assert all((r[2], r[3]) == ("right", "wrong") for r in rows)  # good is never wrong
    assert pg.text_content("#flip-count") == f"{len(flips)} flips"
    pg.uncheck("#flip-only")  # every shared item, the flips still first
    rows = pg.eval_on_selector_all(
        "#flip-table tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.textContent))",
    )
    assert sorted(r[1] for r in rows) == shared
    assert [r[1] for r in rows[: len(flips)]] == flips
    assert all(r[2] == r[3] == "right" for r in rows[len(flips) :])
    assert pg.text_content("#flip-count") == f"{len(flips)} flips, {len(shared)} items"
    assert errors == []
    pg.close()


def test_injected_markup_is_shown_as_text_and_never_runs(page: Any) -> None:
    pg, _ = page
    pg.click("button[data-view=items]")
    pg.check("#item-wrong")
    outputs = pg.eval_on_selector_all(
        "#item-table tbody tr td:nth-child(7)", "t => t.map(x => x.textContent)"
    )
    assert outputs and all(XSS[0] in o and XSS[1] in o for o in outputs)
    pg.click("button[data-view=flips]")
    assert pg.evaluate("window.__xss") is None
    assert pg.eval_on_selector_all("#item-table img, #flip-table img", "e => e.length") == 0


def test_a_report_of_an_older_revision_and_missing_predictions(
    reported: tuple[Project, Path], tmp_path: Path
) -> None:
    project, _ = reported

    def data_of(html: str) -> Any:
        return _embedded(html, "report-data")

    out = tmp_path / "old.html"
    assert invoke(project, "report", "HEAD~1", "-o", str(out)).exit_code == 0
    data = data_of(out.read_text())
    assert data["items_total"] == 48  # 24 items x 2 models at HEAD~1
    assert data["missing_predictions"] == []  # the texts of HEAD~1 from DVC's cache
    old = [i for i in data["items"] if i["model"] == "hostile"]
    assert len(old) == 24 and all(i["output"] for i in old)
    cache = project.root / ".dvc" / "cache"
    shutil.move(cache, tmp_path / "cache")
    shutil.rmtree(project.root / "predictions" / "good")
    try:
        assert invoke(project, "report", "HEAD~1", "-o", str(out)).exit_code == 0
        html = out.read_text()
        assert "Run <code>evalledger pull</code>" in html
        assert data_of(html)["missing_predictions"] == ["good/arith", "hostile/arith"]
        assert "<script>window.__xss" not in html[html.index('id="report-data"') :]
    finally:
        shutil.move(tmp_path / "cache", cache)
        dvc(project.root, "checkout", "-q")  # the predictions back from DVC's cache


def test_history_has_a_point_per_committed_version_with_its_commit(
    page: Any, reported: tuple[Project, Path]
) -> None:
    pg, seen = page
    project, out = reported
    commits = git(project.root, "log", "--format=%h %s", "--", "metrics/good/arith.json")
    versions = [line.split(" ", 1) for line in commits.splitlines()]
    assert len(versions) == 2
    html = out.read_text()
    specs = _embedded(html, "report-specs")
    points = specs["history"]["data"]["values"]
    good = [p for p in points if p["system"] == "good"]
    assert [p["commit"][:7] for p in good] == [v[0][:7] for v in reversed(versions)]
    assert all(p["subject"] and p["author"] == "evalledger tests" for p in good)
    assert {p["n"] for p in good} == {24, 30}
    pg.click("button[data-view=history]")
    pg.wait_for_function(
        "document.querySelectorAll('#chart-history svg .mark-symbol path').length >= 4"
    )
    assert seen["errors"] == []


def test_breakdown_has_categories_with_their_own_n(
    page: Any, reported: tuple[Project, Path]
) -> None:
    from statsmodels.stats.proportion import proportion_confint

    pg, seen = page
    project, out = reported
    metrics = json.loads((project.root / "metrics/hostile/arith.json").read_text())
    html = out.read_text()
    data = _embedded(html, "report-data")
    rows = [r for r in data["breakdown"]["categories"] if r["system"] == "hostile"]
    assert {r["category"] for r in rows} == set(metrics["categories"])
    for r in rows:
        cat = metrics["categories"][r["category"]]
        low, high = proportion_confint(round(cat["accuracy"] * cat["n"]), cat["n"],
                                       method="wilson")  # fmt: skip
        assert r["n"] == cat["n"] and (r["low"], r["high"]) == pytest.approx((low, high))
    pg.click("button[data-view=breakdown]")
    pg.wait_for_function(
        "document.querySelectorAll('#chart-categories svg .mark-symbol path').length > 0"
    )
    assert pg.eval_on_selector_all("#breakdown-cells tbody tr", "r => r.length") == 2
    assert seen["errors"] == []


def test_items_in_the_terminal_filter_flip_and_read_older_revisions(
    reported: tuple[Project, Path],
) -> None:
    project, _ = reported
    good, hostile = _correct(project, "good"), _correct(project, "hostile")
    wrong = sorted(i for i, ok in hostile.items() if not ok)

    def ids(*args: str) -> list[str]:
        out = invoke(project, "items", *args, "--json")
        assert out.exit_code == 0, out.output
        return sorted(i["id"] for i in json.loads(out.stdout)["items"])

    assert ids("hostile/arith", "--wrong") == wrong
    assert ids("hostile/arith", "--grep", "window.__xss") == wrong
    assert ids("hostile/arith", "--errored") == []
    category = json.loads(invoke(project, "items", "hostile/arith", "--json").stdout)["items"][0]
    some = ids("hostile/arith", "--category", category["category"])
    assert 0 < len(some) < 30
    flips = json.loads(invoke(project, "items", "--flips", "good", "hostile", "--json").stdout)
    assert sorted(f["id"] for f in flips) == sorted(i for i in good if good[i] != hostile[i])
    older = json.loads(invoke(project, "items", "hostile/arith", "-r", "HEAD~1", "--json").stdout)
    assert len(older["items"]) == 24 and older["note"] is None  # texts from DVC's cache
    assert all(i["output"] for i in older["items"])
    table = invoke(project, "items", "hostile/arith", "--csv", "-n", "2").stdout.splitlines()
    assert table[0].startswith("id,category,target,samples,correct") and len(table) == 3
    missing = invoke(project, "items", "--flips", "good", "nobody")
    assert missing.exit_code == 2 and "models: good, hostile" in missing.output
    before = _correct(project, "hostile", "HEAD~1")
    across = json.loads(
        invoke(project, "items", "--flips", "good", "hostile@HEAD~1", "--json").stdout
    )
    assert sorted(f["id"] for f in across) == sorted(i for i in before if good[i] != before[i])
    assert all(f["good"] and not f["hostile@HEAD~1"] for f in across)


def test_the_diff_view_has_the_paired_tests_and_links_to_flipped_items(
    browser: Any, tmp_path: Path
) -> None:
    import subprocess
    import sys

    project = make_project(tmp_path / "proj")
    evalledger = str(Path(sys.executable).parent / "evalledger")
    for args in (["run", "--commit"], ["run", "-S", "models.noisy.error_rate=0.6"]):
        done = subprocess.run(
            [evalledger, *args], cwd=project.root, capture_output=True, text=True
        )  # fmt: skip  (in-process runs clash with playwright's loop)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "diff.html"
    done = subprocess.run([evalledger, "report", "--base", "HEAD", "-o", str(out)],
                          cwd=project.root, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    before = _correct(project, "noisy", "HEAD")
    after = _correct(project, "noisy")
    broken = sorted(i for i in after if before[i] and not after[i])
    assert broken
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.click("button[data-view=diff]")
    rows = page.eval_on_selector_all(
        "#diff-changes tbody tr", "rows => rows.map(r => r.children[1].textContent)"
    )
    assert "noisy/arith" in rows and "solver/arith" not in rows
    links = page.eval_on_selector_all(
        "#diff-changes tbody tr:has(td:nth-child(2):text-is('noisy/arith')) button.broken",
        "b => b.map(x => x.textContent.slice(2))",
    )
    assert sorted(links) == broken
    page.click("#diff-changes tbody tr:has(td:nth-child(2):text-is('noisy/arith')) button.broken")
    assert page.input_value("#item-search") == broken[0]
    shown = page.eval_on_selector_all("#item-table tbody tr td:nth-child(2)",
                                      "t => t.map(x => x.textContent)")  # fmt: skip
    assert shown == [broken[0]] and page.is_visible("#items")
    page.click("button[data-view=diff]")
    side = page.eval_on_selector_all(
        "#diff-items tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.textContent))",
    )
    noisy = [r for r in side if r[0] == "noisy/arith"]
    fixed = sorted(i for i in after if after[i] and not before[i])
    assert [r[1] for r in noisy] == broken + fixed  # the broken ones first
    for _, item_id, was, now, target, out_before, out_now in noisy:
        assert (was, now) == (("right", "wrong") if item_id in broken else ("wrong", "right"))
        assert out_before != out_now and target in (out_before if was == "right" else out_now)
    assert errors == []
    page.close()


def test_the_training_view_overlays_runs_and_sets_config_against_the_loss(
    browser: Any, tmp_path: Path
) -> None:
    from test_training_paths import TrainConfig, train

    project = make_project(tmp_path / "proj")
    for lr in (0.01, 0.1, 0.5):
        train(project, TrainConfig(lr=lr), name=f"lr-{lr}")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "three learning rates")
    out = tmp_path / "training.html"
    assert invoke(project, "report", "-o", str(out)).exit_code == 0
    html = out.read_text()
    specs = _embedded(html, "report-specs")
    series = specs["series"]["data"]["values"]
    assert {p["run"] for p in series} == {"lr-0.01", "lr-0.1", "lr-0.5"}
    assert len(series) == 3 * 4 * 4  # runs x metrics x epochs
    config = specs["config"]["data"]["values"]
    for run in ("lr-0.01", "lr-0.1", "lr-0.5"):
        summary = json.loads((project.root / f"metrics/_experiments/{run}.json").read_text())
        lr = [p for p in config if p["run"] == run and p["key"] == "lr"]
        assert lr == [
            {"run": run, "key": "lr", "x": float(run[3:]), "value": summary["val"]["loss"]}
        ]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.click("button[data-view=training]")
    page.wait_for_selector("#chart-series svg .mark-line path")
    assert page.eval_on_selector_all("#chart-series svg .mark-line path", "e => e.length") >= 3
    assert page.eval_on_selector_all("#chart-config svg .mark-symbol path", "e => e.length") >= 3
    assert errors == []
    page.close()
