"""Mirrors: copies of what the Tracker logs in another tracking service (W&B, MLflow).

The git ledger stays the source of truth; a mirror only copies. Mirrors are registered
under the entry-point group ``evalledger.mirrors`` (evalledger's own ``wandb`` included,
in its ``pyproject.toml``), so a third-party package adds one the same way::

    [project.entry-points."evalledger.mirrors"]
    mine = "my_package.mirror:MyMirror"

A mirror class is called with the user's options as keyword arguments and implements
:class:`Mirror`. Its backend library is an optional extra (``pip install
'evalledger[wandb]'``, ``'evalledger[mlflow]'``), imported only when a mirror is built.

What a mirror sends leaves the ledger's control, so every string of it (names, notes,
params, tags, summaries) passes the redaction point first: :func:`scrubbed` does that for
a value of any shape, and the built-in mirrors call it on everything they send.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from evalledger.errors import ConfigError, EvalLedgerError, describe, notice
from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from evalledger.manifest import ArtifactRecord, ExecutionManifest

__all__ = [
    "MIRRORS_GROUP",
    "Mirror",
    "MirrorGroup",
    "MissingBackendError",
    "known_mirrors",
    "load_mirror",
    "scrubbed",
]

MIRRORS_GROUP = "evalledger.mirrors"


@runtime_checkable
class Mirror(Protocol):
    """What the Tracker calls, in this order: ``start``, the ``log_*`` methods, ``finish``."""

    def start(self, manifest: ExecutionManifest) -> None:
        """Open the mirrored run for a new experiment (its manifest as first written)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Step metrics, e.g. ``{"train/loss": 0.4}`` at ``step``."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Hyperparameters (merged into the run's configuration)."""

    def log_artifact(self, record: ArtifactRecord, kind: str) -> None:
        """A checkpoint or artifact (``kind``: ``checkpoint`` or ``artifact``), by reference."""

    def log_evaluation(self, benchmark: str, metrics: dict[str, Any]) -> None:
        """An evaluation's metrics on ``benchmark``."""

    def finish(self, status: str) -> None:
        """Close the run; ``status`` is the experiment's (``completed`` or ``failed``).

        A mirror may also define ``flush()``: the Tracker calls it after each flush's
        ``log_metrics`` calls, so a mirror can buffer steps and send them in batches.
        """


def scrubbed(value: Any) -> Any:
    """``value`` with every string in it, mapping keys too, passed through ``scrub_text``.

    Mappings, lists and tuples are copied (tuples become lists); other values are kept.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrubbed(k): scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    return value


class MissingBackendError(ConfigError):
    """A mirror's backend library (an optional extra) is not installed."""


def _group() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=MIRRORS_GROUP)}


def known_mirrors() -> list[str]:
    """Names of the installed mirrors, sorted."""
    return sorted(_group())


def load_mirror(name: str, **options: Any) -> Mirror:
    """Build the mirror registered as ``name`` with ``options`` (e.g. ``project=``).

    Raises ConfigError for an unknown name (listing the known ones) or a mirror that fails
    to build, and :class:`MissingBackendError` (a ConfigError) naming the ``pip install``
    when its backend library is missing.
    """
    eps = _group()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise ConfigError(
            f"unknown mirror {name!r}; known: {known}",
            "fix the name, or install the package that provides it",
        )
    try:
        cls = eps[name].load()
        mirror = cls(**options)
    except ConfigError:
        raise
    except ImportError as exc:
        builtin = eps[name].value.startswith("evalledger.")
        missing = exc.name or str(exc)
        raise MissingBackendError(
            f"the {name} mirror needs the {missing} package, which is not installed",
            f"pip install 'evalledger[{name}]'" if builtin else f"pip install {missing}",
        ) from None
    except Exception as exc:  # a broken plugin or bad options: one line, not a traceback
        raise ConfigError(f"mirror {name!r} failed to load: {type(exc).__name__}: {exc}") from None
    if not isinstance(mirror, Mirror):
        raise ConfigError(f"mirror {name!r} ({cls!r}) does not implement the Mirror protocol")
    return mirror


def _why(exc: BaseException) -> str:
    """Why a mirror failed to build, in one line of reasonable length (with the fix)."""
    text = exc.one_line() if isinstance(exc, EvalLedgerError) else describe(exc)
    return text if len(text) <= 300 else text[:297] + "..."


class MirrorGroup:
    """Mirrors called beside the ledger; one that raises is dropped with one warning."""

    def __init__(self, mirrors: list[tuple[str, Any]]) -> None:
        self.active = mirrors

    @classmethod
    def load(cls, entries: list[str | Mirror]) -> MirrorGroup:
        """Build mirrors from names (see :func:`load_mirror`) or ready objects.

        An unknown name raises (a typo, a configuration error before any training); a
        mirror that fails to build (its backend missing, refusing its options or its
        tracking URI, any exception of its constructor) is left out with one warning
        line, and the ledger records without it.
        """
        loaded: list[tuple[str, Any]] = []
        known = _group()
        for entry in entries:
            if not isinstance(entry, str):
                loaded.append((type(entry).__name__, entry))
                continue
            if entry not in known:
                load_mirror(entry)  # raises the unknown-name error, listing the known ones
            try:
                loaded.append((entry, load_mirror(entry)))
            except Exception as exc:
                notice(f"mirror {entry} is disabled, the ledger records without it: {_why(exc)}")
        return cls(loaded)

    def call(self, method: str, *args: Any, optional: bool = False) -> None:
        """Call ``method`` on every mirror; ``optional`` skips those without it."""
        for entry in list(self.active):
            label, mirror = entry
            if optional and not callable(getattr(mirror, method, None)):
                continue
            try:
                getattr(mirror, method)(*args)
            except Exception as exc:
                self.active.remove(entry)
                notice(
                    f"mirror {label} failed in {method} ({describe(exc)}); it is disabled, "
                    "the ledger keeps recording"
                )
