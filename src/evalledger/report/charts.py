"""The report's Vega-Lite charts, built with altair (the grammar DVC's plots use)."""

from __future__ import annotations

from typing import Any


def _with_values(chart: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The chart's spec with ``rows`` as its data.

    The rows are set after altair builds and validates the spec: its walk is slow on
    thousands of rows and would check nothing of them.
    """
    spec: dict[str, Any] = dict(chart.to_dict())
    spec["data"] = {"values": rows}
    return spec


__all__ = [
    "categories_spec",
    "config_spec",
    "heatmap_spec",
    "history_spec",
    "leaderboard_spec",
    "series_spec",
]


def leaderboard_spec(entries: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Models ranked by ``metric``: a bar each, with its confidence interval as a rule."""
    import altair as alt

    rows = [{"model": e["name"], "value": e["value"], "low": e.get("ci_low"),
             "high": e.get("ci_high"), "rank": e["rank"]} for e in entries]  # fmt: skip
    data = alt.Data(values=[])  # type: ignore[no-untyped-call]
    base = alt.Chart(data).encode(
        y=alt.Y("model:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None)
    )
    bars = base.mark_bar(color="#4c78a8").encode(
        x=alt.X("value:Q", title=metric, scale=alt.Scale(domain=[0, 1])),
        tooltip=["model:N", alt.Tooltip("value:Q", format=".4f"),
                 alt.Tooltip("low:Q", format=".4f"), alt.Tooltip("high:Q", format=".4f")],
    )  # fmt: skip
    rules = base.mark_rule(color="#222").encode(x="low:Q", x2="high:Q")
    chart = (bars + rules).properties(width=480, height=max(60, 28 * len(rows)))
    return _with_values(chart, rows)


def heatmap_spec(cells: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Model x benchmark, coloured by ``metric``; flagged cells marked with a "!"."""
    import altair as alt

    rows = [{"model": c["system"], "benchmark": c["benchmark"], "value": c["value"],
             "label": (f"{c['value']:.3f}" if isinstance(c["value"], int | float) else "-")
             + (" !" if c["flags"] else ""), "flags": ", ".join(c["flags"]) or "none"}
            for c in cells]  # fmt: skip
    data = alt.Data(values=[])  # type: ignore[no-untyped-call]
    base = alt.Chart(data).encode(
        x=alt.X("benchmark:N", title=None), y=alt.Y("model:N", title=None)
    )
    rect = base.mark_rect().encode(
        color=alt.Color("value:Q", title=metric, scale=alt.Scale(scheme="viridis")),
        tooltip=["model:N", "benchmark:N", alt.Tooltip("value:Q", format=".4f"), "flags:N"],
    )
    text = base.mark_text(color="white").encode(text="label:N")
    benchmarks, models = {c["benchmark"] for c in cells}, {c["system"] for c in cells}
    chart = (rect + text).properties(
        width=max(160, 90 * len(benchmarks)), height=max(60, 30 * len(models))
    )
    return _with_values(chart, rows)


def history_spec(points: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Each model's metric over commit time, a panel per benchmark, interval bands."""
    import altair as alt

    data = alt.Data(values=[])  # type: ignore[no-untyped-call]
    base = alt.Chart(data).encode(
        x=alt.X("time:T", title="commit time"),
        color=alt.Color("system:N", title="model"),
    )
    band = base.mark_area(opacity=0.15).encode(y="low:Q", y2="high:Q")
    line = base.mark_line().encode(y=alt.Y("value:Q", title=metric))
    dots = base.mark_point(filled=True, size=50).encode(
        y="value:Q",
        tooltip=["system:N", "benchmark:N", alt.Tooltip("value:Q", format=".4f"),
                 "commit:N", "author:N", "subject:N", alt.Tooltip("time:T")],
    )  # fmt: skip
    chart = alt.layer(band, line, dots).properties(width=360, height=220)
    return _with_values(chart.facet(column=alt.Column("benchmark:N", title=None)), points)


def categories_spec(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per category and model with its interval, a panel per benchmark."""
    import altair as alt

    data = alt.Data(values=[])  # type: ignore[no-untyped-call]
    base = alt.Chart(data).encode(
        y=alt.Y("category:N", title=None), color=alt.Color("system:N", title="model")
    )
    rules = base.mark_rule().encode(x=alt.X("low:Q", title="accuracy", scale=alt.Scale(
        domain=[0, 1])), x2="high:Q")  # fmt: skip
    dots = base.mark_point(filled=True, size=60).encode(
        x="value:Q",
        tooltip=["system:N", "category:N", alt.Tooltip("value:Q", format=".4f"), "n:Q",
                 alt.Tooltip("low:Q", format=".4f"), alt.Tooltip("high:Q", format=".4f")],
    )  # fmt: skip
    chart = alt.layer(rules, dots).properties(width=300, height=max(60, 24 * len(
        {r["category"] for r in rows})))  # fmt: skip
    return _with_values(chart.facet(column=alt.Column("benchmark:N", title=None)), rows)


def series_spec(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Tracked runs' step series overlaid, a panel per metric."""
    import altair as alt

    data = alt.Data(values=[])  # type: ignore[no-untyped-call]
    line = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("run:N"), tooltip=["run:N", "metric:N", "step:Q", "value:Q"],
    ).properties(width=280, height=180)  # fmt: skip
    return _with_values(line.facet(facet=alt.Facet("metric:N", title=None), columns=3), points)


def config_spec(points: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Each numeric config key's value against ``metric``, a point per run."""
    import altair as alt

    data = alt.Data(values=[])  # type: ignore[no-untyped-call]
    dots = alt.Chart(data).mark_point(filled=True, size=70).encode(
        x=alt.X("x:Q", title=None, scale=alt.Scale(zero=False)),
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        color=alt.Color("run:N"), tooltip=["run:N", "key:N", "x:Q", "value:Q"],
    ).properties(width=220, height=160)  # fmt: skip
    return _with_values(dots.facet(facet=alt.Facet("key:N", title=None), columns=4), points)
