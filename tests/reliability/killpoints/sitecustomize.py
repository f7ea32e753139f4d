"""Kill this process with SIGKILL at a named point (tests/reliability/test_kill.py).

Python imports ``sitecustomize`` at start-up from the first folder on its path that has
one, so a subprocess started with this folder on PYTHONPATH gets these hooks and
production code carries none. ``EVALLEDGER_KILL_AT`` names the point, ``KIND:TARGET:N``:

* ``replace:NAME:N``: at the N-th ``os.replace`` onto a file named NAME, before it
  renames (the temp file is written and fsynced; the rename never happens);
* ``git:VERB:N``: at the N-th ``git VERB`` run through ``subprocess.run``, before it
  starts (``git:commit:1`` is after ``git add`` and before the commit).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

_POINT = os.environ.get("EVALLEDGER_KILL_AT", "")


def _counter(nth: int) -> Any:
    seen = [0]

    def hit() -> None:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    return hit


if _POINT:
    _kind, _target, _nth = _POINT.split(":")
    _hit = _counter(int(_nth))
    if _kind == "replace":
        _replace = os.replace

        def _killing_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if os.path.basename(os.fsdecode(dst)) == _target:
                _hit()
            _replace(src, dst, *args, **kwargs)

        os.replace = _killing_replace
    elif _kind == "git":
        _run = subprocess.run

        def _killing_run(args: Any, *rest: Any, **kwargs: Any) -> Any:
            if isinstance(args, list | tuple) and list(args[:2]) == ["git", _target]:
                _hit()
            return _run(args, *rest, **kwargs)

        subprocess.run = _killing_run  # type: ignore[assignment]
    else:
        raise SystemExit(f"EVALLEDGER_KILL_AT: unknown kind {_kind!r}")
