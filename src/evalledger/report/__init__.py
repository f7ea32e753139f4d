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

__all__ = ["write_report"]


def write_report(
    project: Project, output: Path, rev: str | None = None, metric: str | None = None
) -> int:
    """Write the report of ``rev`` (default: the workspace) to ``output``; its size in bytes."""
    from evalledger.ledger.history import Ledger
    from evalledger.report.data import collect
    from evalledger.report.render import render_html

    with Ledger(project) as ledger:
        html = render_html(collect(ledger, rev, metric), project.state_dir / "cache")
    atomic_write(output, html)
    return len(html.encode("utf-8"))
