"""The MLflow mirror (``pip install 'evalledger[mlflow]'``, which is ``mlflow-skinny``).

One MLflow run per tracked experiment, in the MLflow experiment ``experiment`` (default
``evalledger``): the configuration and parameters become params (flattened to dotted
keys), step metrics go to the run's metric history in batches, evaluations become
``eval/<benchmark>/<metric>`` metrics, and checkpoint/artifact references (path, sha256,
size: no upload) become tags. The tracking URI is MLflow's own (``MLFLOW_TRACKING_URI``)
unless ``tracking_uri`` is given, so a server, a database or a local folder all work.
Every string sent (names, tags, notes, params, keys) passes the redaction point first.
"""

from __future__ import annotations

import json
import re
import time
from numbers import Real
from typing import TYPE_CHECKING, Any

from evalledger.metrics import flatten
from evalledger.mirrors import scrubbed
from evalledger.redact import redact, scrub_text

if TYPE_CHECKING:
    from evalledger.manifest import ArtifactRecord, ExecutionManifest

__all__ = ["MlflowMirror", "mlflow_key"]

# MLflow's own limits: keys of 250 characters, param values of 6,000, tag values of
# 8,000; a log_batch call takes at most 1,000 metrics and 100 params or tags.
_KEY_LIMIT, _PARAM_LIMIT, _TAG_LIMIT = 250, 6000, 8000
_METRIC_BATCH, _PARAM_BATCH = 1000, 100


def mlflow_key(key: str) -> str:
    """``key`` as MLflow takes it: letters, digits, ``_-. /`` and a normalised relative path.

    MLflow stores keys as file names in some stores, so it refuses ``a//b``, ``/a`` and
    ``a/../b``; an absolute checkpoint path becomes ``tmp/run/ckpt.bin``.
    """
    parts = re.sub(r"[^\w\-. /]", "_", key).split("/")
    kept = [p.strip() for p in parts if p.strip() not in ("", ".", "..")]
    return "/".join(kept)[:_KEY_LIMIT] or "_"


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return scrub_text(text)[:_PARAM_LIMIT]  # cut after redacting: never half a secret


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


class MlflowMirror:
    """Mirrors a tracked experiment into an MLflow run (see the module doc).

    Metrics are buffered and sent with ``log_batch`` when the Tracker flushes (once a
    second by default), so the training loop never waits on MLflow.
    """

    def __init__(
        self,
        experiment: str = "evalledger",
        tracking_uri: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        from mlflow.tracking import MlflowClient  # the optional extra fails here, not later

        self._client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment = experiment
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self._metrics: list[Any] = []
        self._params: dict[str, str] = {}
        self._metric_keys: dict[str, str] = {}  # metric names repeat every step

    def _active(self) -> str:
        if self.run_id is None:
            raise RuntimeError("MlflowMirror.start was not called")
        return self.run_id

    def _experiment_id(self) -> str:
        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        return str(self._client.create_experiment(self.experiment))

    def start(self, manifest: ExecutionManifest) -> None:
        """Create the MLflow run of ``manifest``'s experiment, with its config as params."""
        git = manifest.git
        tags = {
            "evalledger.execution_id": manifest.execution_id,
            "evalledger.kind": manifest.kind,
            "mlflow.source.git.commit": git.commit or "",
            "mlflow.source.git.branch": git.branch or "",
            "evalledger.git_dirty": str(git.dirty).lower(),
            "evalledger.code_hash": git.code_hash or "",
            "evalledger.diff_hash": git.diff_hash or "",
            **self.tags,
        }
        if manifest.notes:
            tags["mlflow.note.content"] = manifest.notes
        tags = {k: v[:_TAG_LIMIT] for k, v in scrubbed(tags).items() if v}
        run = self._client.create_run(
            self._experiment_id(),
            start_time=int(manifest.created_at.timestamp() * 1000),
            tags=tags,
            run_name=scrub_text(manifest.name or manifest.execution_id),
        )
        self.run_id = run.info.run_id
        self.log_params({**redact(dict(manifest.config)), **redact(dict(manifest.params))})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer step metrics; they are sent at the next :meth:`flush`."""
        from mlflow.entities import Metric

        self._active()
        now = int(time.time() * 1000)
        self._metrics.extend(Metric(self._metric_key(k), float(v), now, step)
                             for k, v in metrics.items())  # fmt: skip
        if len(self._metrics) >= 20 * _METRIC_BATCH:  # a long flush interval: bound memory
            self.flush()

    def _metric_key(self, key: str) -> str:
        """``key`` redacted and made an MLflow key, once per metric name."""
        found = self._metric_keys.get(key)
        if found is None:
            found = self._metric_keys[key] = mlflow_key(scrub_text(key))
        return found

    def flush(self) -> None:
        """Send the buffered metrics, 1,000 per request."""
        run_id = self._active()
        pending, self._metrics = self._metrics, []
        for i in range(0, len(pending), _METRIC_BATCH):
            self._client.log_batch(run_id, metrics=pending[i : i + _METRIC_BATCH])

    def log_params(self, params: dict[str, Any]) -> None:
        """Parameters as flattened MLflow params (secrets redacted).

        MLflow params cannot change once logged: a later, different value of a key is
        recorded as the tag ``params.<key>`` instead (the latest value).
        """
        from mlflow.entities import Param, RunTag

        run_id = self._active()
        new: list[Param] = []
        changed: list[RunTag] = []
        for key, value in flatten(redact(dict(params))).items():
            name, text = mlflow_key(scrub_text(key)), _param_text(value)
            if name not in self._params:
                self._params[name] = text
                new.append(Param(name, text))
            elif self._params[name] != text:
                changed.append(RunTag(f"params.{name}"[:_KEY_LIMIT], text[:_TAG_LIMIT]))
        for i in range(0, len(new), _PARAM_BATCH):
            self._client.log_batch(run_id, params=new[i : i + _PARAM_BATCH])
        for i in range(0, len(changed), _PARAM_BATCH):
            self._client.log_batch(run_id, tags=changed[i : i + _PARAM_BATCH])

    def log_artifact(self, record: ArtifactRecord, kind: str) -> None:
        """A reference (path, sha256, size, step) as the tag ``<kind>/<name or path>``.

        The bytes are not uploaded: they live in DVC, the record says which they are.
        """
        run_id = self._active()
        entry = scrub_text(json.dumps(record.model_dump(mode="json", exclude_none=True)))
        entry = entry[:_TAG_LIMIT]
        key = mlflow_key(scrub_text(f"{kind}/{record.name or record.path}"))
        self._client.set_tag(run_id, key, entry)
        if kind == "checkpoint":
            self._client.set_tag(run_id, "checkpoint/latest", entry)

    def log_evaluation(self, benchmark: str, metrics: dict[str, Any]) -> None:
        """Numeric metrics (nested mappings flattened) as ``eval/<benchmark>/<metric>``."""
        from mlflow.entities import Metric

        run_id = self._active()
        now = int(time.time() * 1000)
        found = [
            Metric(self._metric_key(f"eval/{benchmark}/{key.replace('.', '/')}"), float(v), now, 0)
            for key, v in flatten(metrics).items()
            if _is_number(v)
        ]
        for i in range(0, len(found), _METRIC_BATCH):
            self._client.log_batch(run_id, metrics=found[i : i + _METRIC_BATCH])

    def finish(self, status: str) -> None:
        """Send what is buffered and end the run: FINISHED when ``completed``, else FAILED."""
        run_id = self._active()
        self.flush()
        self._client.set_tag(run_id, "evalledger.status", status)
        self._client.set_terminated(run_id, "FINISHED" if status == "completed" else "FAILED")
        self.run_id = None
