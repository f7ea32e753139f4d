"""The Weights & Biases mirror (``pip install 'evalledger[wandb]'``).

One W&B run per tracked experiment, with the experiment's ID (made W&B-safe) as the run
ID, its name, notes and configuration: step metrics go to the run's history, parameters
to its config, evaluations and checkpoint/artifact references (path, sha256, size: no
upload) to its summary. ``WANDB_MODE=offline`` (or ``mode="offline"``) keeps it local.
Every string sent (name, notes, config, summary keys and values) passes the redaction
point first.
"""

from __future__ import annotations

import re
from numbers import Real
from typing import TYPE_CHECKING, Any

from evalledger.mirrors import scrubbed
from evalledger.redact import redact, scrub_text

if TYPE_CHECKING:
    from evalledger.manifest import ArtifactRecord, ExecutionManifest

__all__ = ["WandbMirror", "wandb_run_id"]


def wandb_run_id(execution_id: str) -> str:
    """A W&B-safe run ID for an execution: letters, digits, ``_`` and ``-``, 64 at most."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", execution_id)[:64]


def _reinit_value(version: str) -> Any:
    """``reinit`` for wandb.init: one run per experiment, several experiments per process."""
    parts = [int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", version)[:3]]
    # "create_new" (concurrent runs) exists from 0.19.10; before it, True (finish the last).
    return "create_new" if tuple(parts) >= (0, 19, 10) else True


def _numeric(prefix: str, value: Any) -> dict[str, float | int]:
    """``{prefix: value}`` for numbers, flattened ``prefix/key`` entries for mappings."""
    if isinstance(value, dict):
        out: dict[str, float | int] = {}
        for k, v in value.items():
            out.update(_numeric(f"{prefix}/{k}", v))
        return out
    if isinstance(value, Real) and not isinstance(value, bool):
        return {prefix: value if isinstance(value, int) else float(value)}
    return {}


class WandbMirror:
    """Mirrors a tracked experiment into a W&B run (see the module doc).

    ``project`` defaults to W&B's (``WANDB_PROJECT``); ``mode`` to ``WANDB_MODE``; any
    other keyword (``group``, ``dir``, ``settings``, ...) is passed to ``wandb.init``.
    """

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        import wandb  # the optional extra: a missing package fails here, not at start

        self._wandb = wandb
        self.project = project
        self.entity = entity
        self.mode = mode
        self.init_kwargs = init_kwargs
        self.run: Any = None
        self._metric_keys: dict[str, str] = {}  # metric names repeat every step

    def _active(self) -> Any:
        if self.run is None:
            raise RuntimeError("WandbMirror.start was not called")
        return self.run

    def start(self, manifest: ExecutionManifest) -> None:
        """Open the W&B run of ``manifest``'s experiment."""
        config = redact(dict(manifest.config))
        config.setdefault("evalledger", {
            "execution_id": manifest.execution_id,
            "kind": manifest.kind,
            "git_commit": manifest.git.commit,
            "git_branch": manifest.git.branch,
            "git_dirty": manifest.git.dirty,
            "code_hash": manifest.git.code_hash,
            "diff_hash": manifest.git.diff_hash,
        })  # fmt: skip
        if manifest.params:
            config.update(redact(manifest.params))
        kwargs: dict[str, Any] = {
            "project": self.project,
            "entity": self.entity,
            "name": scrub_text(manifest.name or manifest.execution_id),
            "id": wandb_run_id(manifest.execution_id),
            "config": scrubbed(config),
            "notes": scrubbed(manifest.notes),
            "tags": ["evalledger"],
            "job_type": manifest.kind,
            "reinit": _reinit_value(self._wandb.__version__),
        }
        if self.mode is not None:
            kwargs["mode"] = self.mode
        kwargs.update(self.init_kwargs)
        self.run = self._wandb.init(**kwargs)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Step metrics into the run's history at ``step``."""
        keys = self._metric_keys
        for key in metrics:
            if key not in keys:
                keys[key] = scrub_text(key)
        self._active().log({keys[k]: v for k, v in metrics.items()}, step=step)

    def log_params(self, params: dict[str, Any]) -> None:
        """Parameters into the run's config (secrets redacted; later values win)."""
        self._active().config.update(scrubbed(redact(dict(params))), allow_val_change=True)

    def log_artifact(self, record: ArtifactRecord, kind: str) -> None:
        """A reference (path, sha256, size, step) in the summary: ``<kind>/<name or path>``.

        The bytes are not uploaded: they live in DVC, the record says which they are.
        """
        entry = scrubbed(record.model_dump(mode="json", exclude_none=True))
        run = self._active()
        run.summary[scrub_text(f"{kind}/{record.name or record.path}")] = entry
        if kind == "checkpoint":
            run.summary["checkpoint/latest"] = entry

    def log_evaluation(self, benchmark: str, metrics: dict[str, Any]) -> None:
        """Numeric metrics (nested mappings flattened) as ``eval/<benchmark>/<metric>``."""
        run = self._active()
        for key, value in _numeric(f"eval/{benchmark}", metrics).items():
            run.summary[scrub_text(key)] = value

    def finish(self, status: str) -> None:
        """Close the run: exit code 0 when ``status`` is ``completed``, else 1."""
        run = self._active()
        run.summary["evalledger/status"] = status
        run.finish(exit_code=0 if status == "completed" else 1)
        self.run = None
