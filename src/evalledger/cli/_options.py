"""Helpers shared by commands: finding the project from the root group's --project."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.project import Project

if TYPE_CHECKING:
    import click

__all__ = ["current_project"]


def current_project(ctx: click.Context) -> Project:
    """The project named by ``--project``, or the one containing the current folder."""
    obj = ctx.find_root().obj or {}
    return Project.find(obj.get("project_dir"))
