"""The ``python`` adapter: any ``module:callable`` becomes a model, no server needed.

The callable returns the answer's text, a :class:`~evalledger.plugin_types.Completion`,
or a mapping ``{"text": ..., "agents": [{"name": ..., "success": ...}, ...]}`` (token
counts optional). A malformed agent record errors that item, never the run.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from evalledger.errors import ConfigError
from evalledger.models.base import Model, ModelSettings
from evalledger.plugin_types import Completion, agent_records

if TYPE_CHECKING:
    from collections.abc import Callable

    from evalledger.plugin_types import Item

__all__ = ["PythonModel"]


class PythonSettings(ModelSettings):
    """Settings of the ``python`` adapter.

    A sync function runs in worker threads, ``max_concurrency`` at a time (default 1, as
    user code is not always thread-safe); an ``async def`` function runs on the loop.
    """

    callable: str
    """``package.module:function``; called as ``fn(prompt)`` or ``fn(prompt, item)``, with
    ``system=`` (the prompt set's system prompt) and ``decoding=`` when it takes them."""
    path: str | None = None
    """A folder (relative to the project root) to put on ``sys.path`` first."""
    options: dict[str, Any] = {}
    """Extra keyword arguments passed to the callable."""

    @field_validator("callable")
    @classmethod
    def _module_function(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError("must be 'package.module:function'")
        return value


class PythonModel(Model):
    """Calls a user function for each prompt (``adapter: python``)."""

    Settings = PythonSettings
    settings: PythonSettings

    def __init__(self, name: str, settings: PythonSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        self._fn, self._wants_item = self._resolve(settings)
        try:
            params = inspect.signature(self._fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        self._wants_decoding = "decoding" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )
        self._wants_system = "system" in params

    def _resolve(self, s: PythonSettings) -> tuple[Callable[..., Any], bool]:
        module_name, sep, attr = s.callable.partition(":")
        if not sep or not module_name or not attr:
            raise ConfigError(
                f"models.{self.name}.callable {s.callable!r} is not 'module:function'"
            )
        if s.path:
            folder = str(Path(s.path).resolve())
            if folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            module = importlib.import_module(module_name)
            fn = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"models.{self.name}.callable {s.callable!r} cannot be imported: {exc}",
                "check the module path, or set models.<name>.path",
            ) from None
        try:
            params = inspect.signature(fn).parameters
            wants_item = len(params) >= 2 or "item" in params
        except (TypeError, ValueError):
            wants_item = False
        return fn, wants_item

    def _call(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Any:
        kwargs = dict(self.settings.options)
        if self._wants_decoding:
            kwargs["decoding"] = decoding
        if self._wants_system:  # the prompt set's system prompt, or None
            kwargs["system"] = decoding.get("system")
        if self._wants_item:
            return self._fn(prompt, item, **kwargs)
        return self._fn(prompt, **kwargs)

    def generate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Call the function and normalise what it returns."""
        return _completion(self._call(prompt, item, decoding))

    async def agenerate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Await an async function on the loop; run a sync one in a worker thread."""
        if inspect.iscoroutinefunction(self._fn):
            return _completion(await self._call(prompt, item, decoding))
        return await super().agenerate(prompt, item, decoding)


def _completion(out: Any) -> Completion:
    if isinstance(out, Completion):
        agents = agent_records(out.agents)
        return out if agents == out.agents else replace(out, agents=agents)
    if isinstance(out, dict):
        return Completion(
            text=str(out.get("text", "")),
            prompt_tokens=out.get("prompt_tokens"),
            completion_tokens=out.get("completion_tokens"),
            agents=agent_records(out.get("agents")),
        )
    return Completion(text=str(out))
