"""``evalledger report``: the ledger as one self-contained HTML page.

::

    from evalledger.report import write_report

    write_report(project, "report.html")            # the workspace
    write_report(project, "report.html", rev="HEAD~1")
    write_report(project, "report.html", base="main", compare=["v1.0"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.atomic import atomic_write

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from evalledger.project import Project

__all__ = ["build_report", "write_report"]


def build_report(
    project: Project, rev: str | None = None, metric: str | None = None, live: bool = False,
    base: str | None = None, compare: Iterable[str] = (),
) -> str:  # fmt: skip
    """The report's HTML of ``rev`` (default: the workspace), with a Diff view vs ``base``.

    The items of ``compare`` and ``base`` come along for the Side by side view.
    """
    from concurrent.futures import ThreadPoolExecutor

    from evalledger.ledger.history import Ledger
    from evalledger.report.data import collect
    from evalledger.report.render import render_html, vega_bundle

    cache = project.state_dir / "cache"
    # vl-convert builds the Vega bundle natively (seconds, once per project) while the
    # ledger is read
    with ThreadPoolExecutor(1) as pool, Ledger(project) as ledger:
        bundle = pool.submit(vega_bundle, cache)
        data = collect(ledger, rev, metric, base, compare)
        return render_html(data, cache, live, bundle=bundle.result())


def write_report(
    project: Project, output: Path, rev: str | None = None, metric: str | None = None,
    base: str | None = None, compare: Iterable[str] = (),
) -> int:  # fmt: skip
    """Write the report of ``rev`` (default: the workspace) to ``output``; its size in bytes."""
    html = build_report(project, rev, metric, base=base, compare=compare)
    atomic_write(output, html)
    return len(html.encode("utf-8"))
