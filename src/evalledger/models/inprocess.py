"""A model adapter around an object already in memory, for :func:`evalledger.evaluate`.

Not registered under ``evalledger.models``: params.yaml cannot name an object in a
running process. The wrapped object is one with ``generate(prompt)`` (sync or
``async def``), or a plain callable ``fn(prompt)``; either may also take the item
(``generate(prompt, item)``). It returns the answer text, a ``Completion``, or a dict
with ``text`` and optionally ``prompt_tokens`` / ``completion_tokens``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from evalledger.errors import EvalLedgerError
from evalledger.models.base import Model, ModelSettings
from evalledger.models.python import _completion

if TYPE_CHECKING:
    from collections.abc import Callable

    from evalledger.plugin_types import Completion, Item

__all__ = ["InProcessModel", "generate_function"]


def generate_function(obj: Any) -> Callable[..., Any]:
    """The function that answers a prompt: ``obj.generate``, else ``obj`` if callable."""
    fn = getattr(obj, "generate", None)
    if callable(fn):
        return fn  # type: ignore[no-any-return]
    if callable(obj):
        return obj  # type: ignore[no-any-return]
    raise EvalLedgerError(
        f"cannot evaluate a {type(obj).__name__}: it has no generate() and is not callable",
        "pass an object with generate(prompt) -> str (sync or async), or a function",
    )


def _wants_item(fn: Callable[..., Any]) -> bool:
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]  # fmt: skip
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


class InProcessModel(Model):
    """Answers prompts by calling an in-memory object (see the module docstring).

    A sync ``generate`` runs in worker threads, ``max_concurrency`` at a time (default 1:
    a model in memory is seldom thread-safe); an async one is awaited on the loop.
    """

    def __init__(self, name: str, obj: Any, *, max_concurrency: int = 1) -> None:
        if type(max_concurrency) is not int or max_concurrency < 1:
            raise EvalLedgerError(
                f"max_concurrency must be a positive integer, not {max_concurrency!r}"
            )
        super().__init__(name, ModelSettings(max_concurrency=max_concurrency))
        self.obj = obj
        self._fn = generate_function(obj)
        self._with_item = _wants_item(self._fn)

    def _call(self, prompt: str, item: Item) -> Any:
        return self._fn(prompt, item) if self._with_item else self._fn(prompt)

    def generate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Call the object in this (worker) thread; a coroutine it returns is run here."""
        out = self._call(prompt, item)
        if inspect.isawaitable(out):
            import asyncio

            async def wait() -> Any:
                return await out

            out = asyncio.run(wait())
        return _completion(out)

    async def agenerate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Await an async ``generate`` on the loop; run a sync one in a worker thread."""
        if inspect.iscoroutinefunction(self._fn):
            return _completion(await self._call(prompt, item))
        return await super().agenerate(prompt, item, decoding)
