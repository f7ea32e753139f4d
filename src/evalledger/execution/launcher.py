"""The launcher dvc.yaml's stages run, and the interpreter it finds.

dvc.yaml's ``eval`` stage runs ``sh .evalledger.sh cell ...``: DVC runs a stage's cmd
through the shell with PATH as it found it, so without an activated virtualenv a bare
``evalledger`` is not found. The launcher runs the Python recorded for this clone.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from evalledger.atomic import atomic_write
from evalledger.gitinfo import LAUNCHER
from evalledger.project import STATE_DIR

if TYPE_CHECKING:
    from evalledger.project import Project

__all__ = ["INTERPRETER_FILE", "LAUNCHER_TEXT", "ensure_launcher"]

INTERPRETER_FILE = f"{STATE_DIR}/python"

#: The launcher dvc.yaml's stages run, ``sh .evalledger.sh cell ...``. DVC runs a stage's
#: cmd through the shell with PATH as it found it, so with no activated virtualenv a bare
#: ``evalledger`` is "command not found". The launcher runs the interpreter that last
#: ran evalledger in this clone, else ``evalledger`` from PATH (a fresh clone, DVC's
#: queue workers), and says what to do when there is neither.
LAUNCHER_TEXT = f"""\
# evalledger's launcher: dvc.yaml's eval stage runs `sh {LAUNCHER} cell ...`, so that
# `dvc repro` and `dvc exp run` work without an activated virtualenv. Written by
# evalledger; commit it with dvc.yaml. It runs the Python that last ran evalledger in
# this clone (recorded, git-ignored, in {INTERPRETER_FILE}), else `evalledger` on PATH.
here=$(dirname -- "$0")
py=
if [ -r "$here/{INTERPRETER_FILE}" ]; then read -r py < "$here/{INTERPRETER_FILE}"; fi
if [ -n "$py" ] && [ -x "$py" ]; then exec "$py" -P -m evalledger "$@"; fi
if command -v evalledger >/dev/null 2>&1; then exec evalledger "$@"; fi
echo "evalledger: not found (nothing recorded in $here/{INTERPRETER_FILE}, none on PATH): \
run <venv>/bin/evalledger run here once, or activate the virtualenv that has it" >&2
exit 127
"""


def ensure_launcher(project: Project) -> list[str]:
    """Write the launcher and record this interpreter for it; the paths that changed.

    Called wherever dvc.yaml's stage is written, so the interpreter recorded is the one
    of the latest evalledger to touch the pipeline (a moved virtualenv heals itself).
    """
    changed: list[str] = []
    for rel, text in ((LAUNCHER, LAUNCHER_TEXT), (INTERPRETER_FILE, f"{sys.executable}\n")):
        path = project.root / rel
        try:
            same = path.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Bytes: no redaction pass, which could take the interpreter's path for a
            # secret's value (an environment variable that happens to hold its folder).
            atomic_write(path, text.encode("utf-8"))
            changed.append(rel)
    return changed
