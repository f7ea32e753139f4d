"""Prompt sets kept as files: a system prompt and a user template per condition.

A prompt set whose params.yaml entry says ``from: files`` reads its prompts from
``prompts/<prompt set>/`` (or ``prompts/<prompt set>/<condition>/`` when the matrix has
a ``condition`` axis)::

    prompts/operational/control/system.md     the system prompt (empty: none)
    prompts/operational/control/user.md       the user template, with {input} (empty: default)
    prompts/operational/treatment/system.md
    prompts/operational/treatment/user.md

The paths are derived from the cell's axis values, never read from params.yaml, so the
eval stage of dvc.yaml can list them as each cell's ``deps`` (DVC's ``matrix:`` can only
interpolate item values): editing one file makes exactly its cells stale in ``dvc status``
and ``evalledger run --dry-run``, and the files' md5s are part of the cell's
configuration hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalledger.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "PROMPTS_DIR",
    "PROMPT_FILES",
    "PromptFiles",
    "dep_templates",
    "prompt_paths",
    "read_prompt_files",
]

PROMPTS_DIR = "prompts"
#: The files of one prompt folder: the system prompt, then the user template.
PROMPT_FILES = ("system.md", "user.md")


def _folder(prompt_set: str, condition: str | None) -> str:
    return "/".join([PROMPTS_DIR, prompt_set, *([condition] if condition else [])])


def prompt_paths(axes: Mapping[str, str]) -> list[str]:
    """The project-relative prompt files of a cell with these axis values."""
    folder = _folder(axes["prompt_set"], axes.get("condition"))
    return [f"{folder}/{name}" for name in PROMPT_FILES]


def dep_templates(axis_names: list[str]) -> list[str]:
    """The eval stage's ``deps`` entries, in DVC's ``${item.<axis>}`` syntax."""
    item = {a: "${item.%s}" % a for a in axis_names}  # noqa: UP031 - DVC's own syntax
    return prompt_paths(item)


@dataclass(frozen=True)
class PromptFiles:
    """A cell's prompts read from its files, and each file's md5."""

    system: str | None
    template: str | None
    md5s: dict[str, str]


def read_prompt_files(root: Path, axes: Mapping[str, str]) -> PromptFiles:
    """Read a cell's prompt files; a missing or unreadable one is a one-line ConfigError."""
    texts: list[str] = []
    md5s: dict[str, str] = {}
    resolved_root = root.resolve()
    for rel in prompt_paths(axes):
        path = root / rel
        if not path.resolve().is_relative_to(resolved_root):
            raise ConfigError(f"prompt file {rel} points outside the project",
                              "make it a regular file inside the project")  # fmt: skip
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"prompt set {axes['prompt_set']!r} reads its prompts from files, but {rel} "
                "is missing",
                f"create {rel} (an empty file means none), or remove 'from: files'",
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read prompt file {rel}: {exc.strerror}") from None
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"prompt file {rel} is not UTF-8 text", "save it as UTF-8") from None
        md5s[rel] = hashlib.md5(data).hexdigest()
    system, template = (t.rstrip("\n") if t.strip() else None for t in texts)
    if template is not None and "{input}" not in template:
        rel = prompt_paths(axes)[1]
        raise ConfigError(f"prompt file {rel} has no {{input}}",
                          "put {input} where the question goes")  # fmt: skip
    return PromptFiles(system=system, template=template, md5s=md5s)
