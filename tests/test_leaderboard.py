"""`evalledger leaderboard`: order, confidence intervals (plain, clustered, binomial), formats."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from html.parser import HTMLParser

import pytest
import scipy.stats

import ledger_factory as lf
from conftest import invoke
from evalledger.analysis.leaderboard import Entry, build_leaderboard
from evalledger.ledger.history import Ledger

Z = 1.959964  # the 95% normal quantile, by hand
TOL = 1e-6


def _board(built: lf.Built, revs: list[str] | None = None, **kw: object) -> list[Entry]:
    with Ledger(built.project) as ledger:
        return build_leaderboard(ledger, revs, **kw).entries  # type: ignore[arg-type]


def _se_items(cell: lf.Cell) -> float:
    """sd / sqrt(n) of the cell's per-item 0/1 scores, by hand."""
    x = cell.values()
    n = len(x)
    mean = sum(x) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
    return sd / math.sqrt(n)


def _se_clustered(cell: lf.Cell) -> float:
    """SE^2 = sum over clusters of (sum of (x_i - mean))^2 / n^2."""
    x = cell.values()
    n = len(x)
    mean = sum(x) / n
    sums: dict[int, float] = {}
    for i, v in enumerate(x):
        sums[i // cell.cluster_size] = sums.get(i // cell.cluster_size, 0.0) + (v - mean)
    return math.sqrt(sum(s * s for s in sums.values()) / n**2)


def _se_binomial(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def _se(cell: lf.Cell) -> float:
    if not cell.with_scores:
        return _se_binomial(cell.accuracy, cell.n_scored)
    return _se_clustered(cell) if cell.cluster_size else _se_items(cell)


def _check(entry: Entry, value: float, se: float, n: int | None) -> None:
    assert entry.value == pytest.approx(value, abs=1e-12)
    assert entry.ci_low == pytest.approx(value - Z * se, abs=TOL)
    assert entry.ci_high == pytest.approx(value + Z * se, abs=TOL)
    assert entry.n_items == n


def _wilson(p: float, n: int) -> tuple[float, float]:
    """The Wilson score interval, by hand."""
    center = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return center - half, center + half


def _check_cell(entry: Entry, cell: lf.Cell) -> None:
    """A cell of 0/1 items: the Wilson interval; with clusters, see :func:`_cell_bounds`."""
    if cell.cluster_size:
        low, high = _cell_bounds(cell)
        assert entry.value == pytest.approx(cell.accuracy, abs=1e-12)
        assert (entry.ci_low, entry.ci_high) == (pytest.approx(low), pytest.approx(high))
        assert entry.n_items == cell.n_scored
        return
    assert entry.value == pytest.approx(cell.accuracy, abs=1e-12)
    low, high = _wilson(cell.accuracy, cell.n_scored)
    assert (entry.ci_low, entry.ci_high) == (
        pytest.approx(low, abs=TOL),
        pytest.approx(high, abs=TOL),
    )
    assert entry.n_items == cell.n_scored


def _cell_bounds(cell: lf.Cell) -> tuple[float, float]:
    """The cell's interval by hand: Wilson for 0/1 items; with G clusters, mean +- t(G-1)
    x the CR1 clustered SE."""
    if cell.cluster_size:
        g = math.ceil(len(cell.values()) / cell.cluster_size)
        half = scipy.stats.t.ppf(0.975, g - 1) * _se_clustered(cell) * math.sqrt(g / (g - 1))
        return cell.accuracy - half, cell.accuracy + half
    return _wilson(cell.accuracy, cell.n_scored)


def _by_model(cells: dict[str, lf.Cell]) -> dict[str, tuple[float, float, float, int]]:
    """model -> (mean over benchmarks, MOVER low, MOVER high, items), by hand.

    MOVER: mean -/+ sqrt(sum of each cell's squared distance to its bound) / B.
    """
    out = {}
    for model in sorted({k.split("/")[0] for k in cells}):
        mine = [c for k, c in cells.items() if k.split("/")[0] == model]
        b = len(mine)
        value = sum(c.accuracy for c in mine) / b
        bounds = [_cell_bounds(c) for c in mine]
        down = (
            math.sqrt(sum((c.accuracy - lo) ** 2 for c, (lo, _) in zip(mine, bounds, strict=True)))
            / b
        )
        up = (
            math.sqrt(sum((hi - c.accuracy) ** 2 for c, (_, hi) in zip(mine, bounds, strict=True)))
            / b
        )
        out[model] = (value, value - down, value + up, sum(c.n_scored for c in mine))
    return out


def _check_model(e: Entry, cells: dict[str, lf.Cell], model: str | None = None) -> None:
    """A model on several benchmarks: MOVER over its cells; on one: that cell's interval."""
    model = model or e.name
    if len(e.benchmarks) == 1:
        _check_cell(e, cells[f"{model}/{next(iter(e.benchmarks))}"])
    else:
        value, low, high, n = _by_model(cells)[model]
        assert e.value == pytest.approx(value, abs=1e-12)
        assert (e.ci_low, e.ci_high) == (pytest.approx(low, abs=TOL), pytest.approx(high, abs=TOL))
        assert e.n_items == n


def test_by_model_order_values_and_cis(built: lf.Built) -> None:
    entries = _board(built)
    assert [(e.rank, e.name) for e in entries] == [(1, "alpha"), (2, "gamma"), (3, "beta")]
    expected = _by_model(lf.WORKSPACE)
    assert expected["alpha"][0] == pytest.approx((0.725 + 0.875) / 2)
    for e in entries:
        _check_model(e, lf.WORKSPACE)
    assert entries[0].benchmarks == {"math": 0.875, "qa": 0.725}
    assert entries[2].benchmarks == {"qa": 0.55}


def test_by_cell_order_and_cis(built: lf.Built) -> None:
    entries = _board(built, by="cell")
    assert [e.name for e in entries] == [
        "alpha/math", "alpha/qa", "gamma/math", "beta/qa", "gamma/qa",
    ]  # fmt: skip
    for e in entries:
        _check_cell(e, lf.WORKSPACE[e.name])


def test_binomial_ci_for_a_cell_without_scores(built: lf.Built) -> None:
    (entry,) = [e for e in _board(built, by="cell") if e.name == "gamma/math"]
    # 30 of 48 scored items (2 more errored): the Wilson interval of 0.625 over 48 items.
    low, high = _wilson(0.625, 48)
    assert (entry.ci_low, entry.ci_high) == (
        pytest.approx(low, abs=TOL),
        pytest.approx(high, abs=TOL),
    )
    assert entry.n_items == 48


def test_clustered_ci_from_the_cluster_column(built: lf.Built) -> None:
    entries = {e.name: e for e in _board(built, ["v1"], by="cell")}
    cell = lf.V1["beta/math"]
    se = _se_clustered(cell)
    assert se == pytest.approx(math.sqrt(1.2) / 20)  # cluster sums .6 -.4 .6 -.4 -.4
    assert se != pytest.approx(_se_items(cell))  # the clusters matter
    # Five clusters: CR1 (x sqrt(5/4)) and Student's t on 4 df, not z.
    half = scipy.stats.t.ppf(0.975, 4) * se * math.sqrt(5 / 4)
    e = entries["beta/math"]
    assert (e.value, e.n_items) == (pytest.approx(0.6), 20)
    assert (e.ci_low, e.ci_high) == (pytest.approx(0.6 - half), pytest.approx(0.6 + half))
    for key in ("alpha/qa", "beta/qa", "gamma/qa", "alpha/math"):
        _check_cell(entries[key], lf.V1[key])


def test_top_and_benchmark_filter(built: lf.Built) -> None:
    top = _board(built, top=2)
    assert [(e.rank, e.name) for e in top] == [(1, "alpha"), (2, "gamma")]
    qa = _board(built, benchmarks=["qa"])
    assert [e.name for e in qa] == ["alpha", "beta", "gamma"]
    for e in qa:
        cell = lf.WORKSPACE[f"{e.name}/qa"]
        _check_cell(e, cell)  # one benchmark each: the cell's Wilson interval
        assert e.n_items == 40
        assert e.benchmarks == {"qa": cell.accuracy}
    out = invoke(built.project, "leaderboard", "-b", "math", "-k", "1", "--json")
    data = json.loads(out.stdout)
    assert [(e["name"], e["value"]) for e in data["entries"]] == [("alpha", 0.875)]
    assert data["benchmarks"] == ["math"]


def test_lower_is_better_metric_sorts_ascending(built: lf.Built) -> None:
    with Ledger(built.project) as ledger:
        board = build_leaderboard(ledger, metric="error_rate")
    assert board.ascending and board.title() == "error_rate (lower is better) by model at workspace"
    assert [(e.name, e.value) for e in board.entries] == [
        ("beta", 0.0), ("gamma", 0.02), ("alpha", 0.1),
    ]  # fmt: skip
    # error_rate = errors / n over all items (errored ones included): Wilson over n, and
    # MOVER across the two cells, so 0 errors of 40 on qa is [0, 0.088], not a point.
    alpha = board.entries[2]
    (qa_low, qa_high), (m_low, m_high) = _wilson(0.0, 40), _wilson(0.2, 20)
    assert qa_low == pytest.approx(0.0, abs=1e-12) and qa_high > 0.08
    down = math.sqrt((0.0 - qa_low) ** 2 + (0.2 - m_low) ** 2) / 2
    up = math.sqrt((qa_high - 0.0) ** 2 + (m_high - 0.2) ** 2) / 2
    assert (alpha.value, alpha.n_items) == (pytest.approx(0.1), 40 + 20)
    assert (alpha.ci_low, alpha.ci_high) == (pytest.approx(0.1 - down), pytest.approx(0.1 + up))
    cells = _board(built, metric="error_rate", by="cell")
    assert [e.name for e in cells][-2:] == ["gamma/math", "alpha/math"]
    low, high = _wilson(0.2, 20)  # a proportion without per-item scores: Wilson
    assert (cells[-1].value, cells[-1].n_items) == (0.2, 20)
    assert (cells[-1].ci_low, cells[-1].ci_high) == (pytest.approx(low), pytest.approx(high))


def test_older_and_several_revisions(built: lf.Built) -> None:
    v1 = _board(built, ["v1"])
    assert [e.name for e in v1] == ["beta", "alpha", "gamma"]  # HEAD: alpha, gamma, beta
    for e in v1:
        _check_model(e, lf.V1)
    assert v1[0].benchmarks == {"math": 0.6, "qa": 0.75}

    both = _board(built, ["v1", "HEAD"])
    v1_label, head = f"v1 ({built.short('v1')})", f"HEAD ({built.short('v3')})"
    names = [e.name for e in both]
    assert names == [f"alpha@{head}", f"beta@{v1_label}", f"alpha@{v1_label}",
                     f"gamma@{v1_label}", f"gamma@{head}", f"beta@{head}"]  # fmt: skip
    for e in both:
        model, _, rev = e.name.partition("@")
        _check_model(e, lf.V1 if rev == v1_label else lf.V3, model)

    out = invoke(built.project, "leaderboard", "--rev", "v1", "--rev", "HEAD", "--json")
    data = json.loads(out.stdout)
    assert data["revs"] == [v1_label, head]
    assert [e["name"] for e in data["entries"]] == names


def test_every_format_has_the_same_numbers(built: lf.Built) -> None:
    p = built.project
    api = _board(built)
    js = json.loads(invoke(p, "leaderboard", "--json").stdout)
    assert js["metric"] == "accuracy" and js["by"] == "model" and js["confidence"] == 0.95
    assert js["benchmarks"] == ["math", "qa"]
    assert [(e["name"], e["value"], e["ci_low"], e["ci_high"], e["n_items"], e["benchmarks"])
            for e in js["entries"]] == [
        (e.name, e.value, e.ci_low, e.ci_high, e.n_items, e.benchmarks) for e in api
    ]  # fmt: skip

    rows = list(csv.DictReader(io.StringIO(invoke(p, "leaderboard", "--csv").stdout)))
    assert list(rows[0]) == ["rank", "model", "accuracy", "ci_low", "ci_high", "items",
                             "errored", "flags", "math", "qa"]  # fmt: skip
    for r, e in zip(rows, api, strict=True):
        assert (int(r["rank"]), r["model"], int(r["items"])) == (e.rank, e.name, e.n_items)
        assert (float(r["accuracy"]), float(r["ci_low"]), float(r["ci_high"])) == (
            e.value, e.ci_low, e.ci_high,
        )  # fmt: skip
        assert {b: float(r[b]) for b in ("math", "qa") if r[b]} == e.benchmarks
        assert (float(r["errored"]), r["flags"]) == (e.errored, " ".join(e.flags))
    # alpha/math has 4 of 20 items errored; beta was not run on math (v2 removed it).
    assert [(e.name, e.errored_text, e.flags) for e in api] == [
        ("alpha", f"{4 / 60:.1%}", []), ("gamma", f"{2 / 90:.1%}", []),
        ("beta", "0%", ["incomplete"]),
    ]  # fmt: skip

    def shown(e: Entry) -> list[str]:  # what the text formats print: 4 significant digits
        bench = [f"{e.benchmarks[b]:.4g}" if b in e.benchmarks else "-" for b in ("math", "qa")]
        return [str(e.rank), e.name, f"{e.value:.4g}", f"[{e.ci_low:.4g}, {e.ci_high:.4g}]",
                str(e.n_items), e.errored_text, " ".join(e.flags) or "-", *bench]  # fmt: skip

    md = invoke(p, "leaderboard", "--md").stdout.splitlines()
    assert md[0] == "**accuracy by model at workspace**"
    assert md[2] == (
        "| rank | model | mean accuracy | 95% CI | items | errored | flags | math | qa |"
    )
    md_rows = [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in md[4:]]
    assert md_rows == [shown(e) for e in api]

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.title = ""
            self._in: str | None = None

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "tr":
                self.rows.append([])
            self._in = tag

        def handle_data(self, data: str) -> None:
            if self._in in ("td", "th"):
                self.rows[-1].append(data)
            elif self._in == "h2":
                self.title += data

        def handle_endtag(self, tag: str) -> None:
            self._in = None

    page = invoke(p, "leaderboard", "--html").stdout
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    parser = Cells()
    parser.feed(page)
    assert parser.title == "accuracy by model at workspace"
    assert parser.rows[0] == ["rank", "model", "mean accuracy", "95% CI", "items", "errored",
                              "flags", "math", "qa"]  # fmt: skip
    assert parser.rows[1:] == [shown(e) for e in api]

    table = invoke(p, "leaderboard").stdout.splitlines()
    assert table[0] == "accuracy by model at workspace"
    assert table[1].split() == [
        "rank", "model", "mean", "accuracy", "95%", "CI", "items", "errored", "flags", "math", "qa"
    ]  # fmt: skip
    parsed = [re.split(r"\s{2,}", line.strip()) for line in table[2:]]
    assert parsed == [shown(e) for e in api]


def test_unknown_metric_or_benchmark_is_one_line(built: lf.Built) -> None:
    out = invoke(built.project, "leaderboard", "-m", "nope")
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.startswith("Error: unknown metric 'nope'; known: accuracy, ")
    assert "error_rate" in out.stderr and out.stderr.count("\n") == 1
    out = invoke(built.project, "leaderboard", "-b", "nope")
    assert (out.exit_code, out.stderr) == (2, "Error: unknown benchmark 'nope'; known: math, qa\n")
    # One unknown benchmark among known ones is an error too, not silently left out.
    out = invoke(built.project, "leaderboard", "-b", "qa", "-b", "mathh")
    assert (out.exit_code, out.stderr) == (
        2, "Error: unknown benchmark 'mathh'; did you mean math? known: math, qa\n"
    )  # fmt: skip
    out = invoke(built.project, "leaderboard", "--rev", "mian")
    assert (out.exit_code, out.stderr) == (
        2,
        "Error: unknown revision 'mian'; did you mean main?\n",
    )


def test_wilson_interval_stays_inside_0_1_where_the_normal_one_collapses() -> None:
    from evalledger.analysis.leaderboard import wilson_interval

    low, high = wilson_interval(1.0, 300, Z)
    assert (low, high) == (pytest.approx(300 / (300 + Z * Z)), 1.0)  # all correct: not [1, 1]
    low, high = wilson_interval(0.0, 20, Z)
    assert low == 0.0 and high == pytest.approx(Z * Z / (20 + Z * Z))
