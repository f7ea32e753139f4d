"""``evalledger report``: the ledger as one self-contained HTML page.

::

    from evalledger.report import write_report

    write_report(project, "report.html")            # the workspace
    write_report(project, "report.html", rev="HEAD~1")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.atomic import atomic_write

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.project import Project

__all__ = ["build_report", "write_report"]


def build_report(
    project: Project, rev: str | None = None, metric: str | None = None, live: bool = False,
    base: str | None = None,
) -> str:  # fmt: skip
    """The report's HTML of ``rev`` (default: the workspace), with a Diff view vs ``base``."""
    from evalledger.ledger.history import Ledger
    from evalledger.report.data import collect
    from evalledger.report.render import render_html

    with Ledger(project) as ledger:
        data = collect(ledger, rev, metric, base)
        return render_html(data, project.state_dir / "cache", live)


def write_report(
    project: Project, output: Path, rev: str | None = None, metric: str | None = None,
    base: str | None = None,
) -> int:  # fmt: skip
    """Write the report of ``rev`` (default: the workspace) to ``output``; its size in bytes."""
    html = build_report(project, rev, metric, base=base)
    atomic_write(output, html)
    return len(html.encode("utf-8"))
