"""A deterministic OpenAI-compatible chat-completions server with injectable faults.

The test suite and the benchmarks start it on 127.0.0.1 (never any other address) to
exercise the ``openai`` adapter over real HTTP.

Answers depend only on the last user message: ``REPLY: text`` is answered with ``text``
(to the end of that line); a grading prompt (``Reference answer: X`` ... ``Answer to
grade: ...``) is answered ``CORRECT`` or ``INCORRECT``; an arithmetic word problem that
:func:`evalledger.models.baseline.solve` parses is answered ``The answer is N.``; anything
else gets ``I don't know.``. Token counts are whitespace word counts.

Faults (429 with ``Retry-After``, 500, a stalled response, malformed JSON, a dropped
connection) are drawn per request with a seeded RNG at ``fault_rate``, or, with
``fail_first: N``, given to the first N attempts of every distinct prompt, in the order of
``faults`` (cycling), after which that prompt always succeeds.

With ``echo_authorization``, the 401 and 500 error bodies quote the request's
``Authorization`` header, as careless endpoints do: the redaction tests use it.

In-process, for tests::

    with ReferenceServer(ServerConfig(fault_rate=0.2)) as server:
        ...  # requests to server.base_url; then server.stats()

As a process (prints one line, ``READY http://127.0.0.1:PORT/v1``, then serves until
SIGTERM or SIGINT)::

    python -m evalledger.testing.openai_server --port 0 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import functools
import itertools
import math
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "FAULTS",
    "HOST",
    "STATE",
    "ReferenceServer",
    "ServerConfig",
    "ServerState",
    "answer",
    "main",
    "make_app",
]

HOST = "127.0.0.1"
"""The only address the server ever binds."""

FAULTS: tuple[str, ...] = ("429", "500", "timeout", "malformed", "drop")
"""Every fault kind, in the default order."""

_SHUTDOWN_TIMEOUT = 0.1  # seconds aiohttp waits for a handler at shutdown (0 means forever)


@dataclass
class ServerConfig:
    """How the reference server behaves.

    The server reads its config on every request, so a test may change fields of a
    running server's ``config`` (as ``server.config.fault_rate = 0``).
    """

    latency: float = 0.0
    """Seconds added to every response (faults included)."""
    fault_rate: float = 0.0
    """Probability (0..1) that a request gets a fault, drawn with ``seed``."""
    faults: tuple[str, ...] = FAULTS
    """The fault kinds to draw from (a subset of :data:`FAULTS`)."""
    retry_after: float = 1.0
    """Seconds sent in ``Retry-After`` on 429s, as given (``0.2`` is sent as ``0.2``)."""
    retry_after_http_date: bool = False
    """Send ``Retry-After`` as an HTTP date (rounded up to the next second) instead."""
    timeout_delay: float = 30.0
    """How long a "timeout" fault stalls before it answers normally."""
    seed: int = 0
    """Seed of the fault RNG (changing it on a running server reseeds it)."""
    fail_first: int = 0
    """If > 0: the first N attempts of every distinct prompt get the kinds of ``faults``
    in order (cycling), and later attempts succeed; ``fault_rate`` is then not used."""
    require_api_key: str | None = None
    """If set, requests without ``Authorization: Bearer <key>`` get a 401."""
    echo_authorization: bool = False
    """Quote the request's ``Authorization`` header in 401 and 500 error bodies: in the
    message (``... Received Authorization: Bearer <key>``) and as ``error.authorization``,
    as an endpoint that leaks the key into its errors would."""

    def __post_init__(self) -> None:
        self.faults = tuple(self.faults)
        unknown = [kind for kind in self.faults if kind not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {list(FAULTS)}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within 0..1, not {self.fault_rate}")
        for name in ("latency", "retry_after", "timeout_delay", "fail_first"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if (self.fault_rate or self.fail_first) and not self.faults:
            raise ValueError("faults must name at least one kind when faults are injected")


# --------------------------------------------------------------------------- answers

_GRADE = re.compile(r"Reference answer:\s*(.*?)\s*\n.*?Answer to grade:(.*)", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_REPLY = "REPLY:"


@functools.cache
def _solver() -> Callable[[str], int | None]:
    try:
        from evalledger.models.baseline import solve
    except ImportError:  # pragma: no cover - the package always ships it
        return lambda text: None
    return solve


def answer(prompt: str) -> str:
    """The deterministic reply to a prompt (the last user message).

    ``REPLY: text`` is answered with ``text`` up to the end of that line (surrounding
    whitespace stripped). A grading prompt (``Reference answer: X`` then ``Answer to
    grade: ...``, as the judge scorer's rubric) is ``CORRECT`` when the last number of the
    graded answer is X, or the answer is X itself, else ``INCORRECT``. An arithmetic word
    problem is solved by :func:`evalledger.models.baseline.solve`. Anything else gets
    ``I don't know.``.
    """
    graded = _GRADE.search(prompt)
    if graded:
        reference, graded_answer = graded.group(1).strip(), graded.group(2)
        numbers = _NUMBER.findall(graded_answer)
        first_line = graded_answer.strip().split("\n", 1)[0].strip().rstrip(".")
        ok = (bool(numbers) and numbers[-1] == reference) or (
            bool(reference) and first_line.casefold() == reference.rstrip(".").casefold()
        )
        return "CORRECT" if ok else "INCORRECT"
    marker = prompt.find(_REPLY)
    if marker >= 0:
        return prompt[marker + len(_REPLY) :].split("\n", 1)[0].strip()
    solved = _solver()(prompt)
    return "I don't know." if solved is None else f"The answer is {solved}."


_cached_answer = functools.lru_cache(maxsize=8192)(answer)


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        )
    return "" if content is None else str(content)


def _prompt_of(messages: Any) -> str | None:
    """The last user message's text (the last message if none is a user's); None if invalid."""
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, dict) for m in messages):
        return None
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return _text(messages[-1].get("content"))


def _words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- state


class ServerState:
    """What a server has seen: one record per request, counters, and the fault RNG.

    Each record is a dict: ``t`` (``time.time()`` when received), ``prompt`` (the last
    user message; None if the body had none), ``fault`` (a kind of :data:`FAULTS` or
    None), ``status`` (the HTTP status sent; None when the connection was dropped or the
    client went away first) and ``authorization`` (the header's value, or None).
    Mutated on the server's event loop; :meth:`stats` and :meth:`reset` are safe from any
    thread.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.attempts: Counter[str] = Counter()
        """Attempts per prompt that passed the key check: ``fail_first`` counts these."""
        self.prompts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.in_flight = 0
        self.peak = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._seed = config.seed
        self._rng = random.Random(config.seed)

    def record(
        self, received: float, prompt: str | None, authorization: str | None
    ) -> dict[str, Any]:
        """Append and return the record of a request just received."""
        rec: dict[str, Any] = {
            "t": received,
            "prompt": prompt,
            "fault": None,
            "status": None,
            "authorization": authorization,
        }
        with self.lock:
            self.requests.append(rec)
            if prompt is not None:
                self.prompts[prompt] += 1
        return rec

    def set_fault(self, rec: dict[str, Any], fault: str | None) -> None:
        """Note the fault a request got."""
        rec["fault"] = fault
        if fault is not None:
            with self.lock:
                self.faults[fault] += 1

    def set_status(self, rec: dict[str, Any], status: int) -> None:
        """Note the status sent for a request."""
        rec["status"] = status
        with self.lock:
            self.statuses[status] += 1

    def draw_fault(self, prompt: str) -> str | None:
        """The fault for this attempt at ``prompt``, or None."""
        cfg = self.config
        n = self.attempts[prompt]
        self.attempts[prompt] = n + 1
        kinds = cfg.faults
        if not kinds:
            return None
        if cfg.fail_first > 0:
            return kinds[n % len(kinds)] if n < cfg.fail_first else None
        if cfg.fault_rate <= 0:
            return None
        if cfg.seed != self._seed:
            self._seed = cfg.seed
            self._rng.seed(cfg.seed)
        if self._rng.random() < cfg.fault_rate:
            return kinds[self._rng.randrange(len(kinds))]
        return None

    def next_id(self) -> str:
        """A fresh completion id."""
        return f"chatcmpl-ref{next(self._ids):010d}"

    def stats(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``GET /stats`` returns)."""
        with self.lock:
            return {
                "max_concurrency": self.peak,
                "requests": len(self.requests),
                "faults": dict(self.faults),
                "prompts": dict(self.prompts),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "active": self.in_flight,
                "authorization": sorted(
                    {r["authorization"] for r in self.requests if r["authorization"]}
                ),
            }

    def reset(self) -> None:
        """Forget every request and attempt, reset the peak, and reseed the RNG."""
        with self.lock:
            self.requests.clear()
            self.attempts.clear()
            self.prompts.clear()
            self.faults.clear()
            self.statuses.clear()
            self.peak = self.in_flight
            self._seed = self.config.seed
            self._rng.seed(self.config.seed)


STATE: web.AppKey[ServerState] = web.AppKey("state", ServerState)
"""The app key of a server's :class:`ServerState`: ``app[STATE]``."""


# --------------------------------------------------------------------------- the app


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    headers: dict[str, str] | None = None,
    echo: str | None = None,
) -> web.Response:
    """An OpenAI-style error body; ``echo`` (an Authorization value) is quoted in it."""
    error: dict[str, Any] = {"message": message, "type": kind, "param": None, "code": code}
    if echo is not None:
        error["message"] = f"{message} Received Authorization: {echo}"
        error["authorization"] = echo
    return web.json_response({"error": error}, status=status, headers=headers)


def _seconds(value: float) -> str:
    """``1.0`` as ``1``, ``0.2`` as ``0.2``."""
    return f"{value:.15g}"


def _retry_after(config: ServerConfig, now: float) -> str:
    if config.retry_after_http_date:
        # rounded up, so that a client honouring it waits at least retry_after
        return email.utils.formatdate(math.ceil(now + config.retry_after), usegmt=True)
    return _seconds(config.retry_after)


def _truncate(text: str, stop: Any, max_tokens: Any) -> tuple[str, str]:
    """Apply ``stop`` sequences and ``max_tokens`` (in words); returns text, finish_reason."""
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    for s in stops:
        if isinstance(s, str) and s:
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 0:
        words = text.split()
        if len(words) > max_tokens:
            return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def make_app(config: ServerConfig | None = None) -> web.Application:
    """The aiohttp application; its state is ``app[STATE]``."""
    config = config or ServerConfig()
    state = ServerState(config)
    app = web.Application()
    app[STATE] = state
    _solver()  # import the solver now, not during the first request

    def echo(request: web.Request) -> str | None:
        """The request's Authorization header, when the config says to echo it."""
        return request.headers.get("Authorization") if config.echo_authorization else None

    def key_error(request: web.Request) -> web.Response | None:
        key = config.require_api_key
        if key and request.headers.get("Authorization") != f"Bearer {key}":
            return _error(
                401,
                "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.",
                "invalid_request_error",
                "invalid_api_key",
                echo=echo(request),
            )
        return None

    async def completions(request: web.Request) -> web.StreamResponse:
        received = time.time()
        task = asyncio.current_task()
        if task is not None:
            state.tasks.add(task)
        state.in_flight += 1
        if state.in_flight > state.peak:
            state.peak = state.in_flight
        try:
            return await complete(request, received)
        finally:
            state.in_flight -= 1
            if task is not None:
                state.tasks.discard(task)

    async def complete(request: web.Request, received: float) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        prompt = _prompt_of(body.get("messages"))
        rec = state.record(received, prompt, request.headers.get("Authorization"))

        denied = key_error(request)
        if denied is not None:
            state.set_status(rec, 401)
            return denied
        if prompt is None:
            state.set_status(rec, 400)
            return _error(
                400,
                "The body must be JSON with a non-empty 'messages' list of objects.",
                "invalid_request_error",
                None,
            )
        if body.get("stream"):
            state.set_status(rec, 400)
            return _error(
                400, "stream is not supported", "invalid_request_error", "unsupported_value"
            )

        fault = state.draw_fault(prompt)
        state.set_fault(rec, fault)
        if config.latency:
            await asyncio.sleep(config.latency)
        if fault == "429":
            state.set_status(rec, 429)
            return _error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
                {"Retry-After": _retry_after(config, time.time())},
            )
        if fault == "500":
            state.set_status(rec, 500)
            return _error(
                500,
                "The server had an error while processing your request.",
                "server_error",
                None,
                echo=echo(request),
            )
        if fault == "malformed":
            state.set_status(rec, 200)
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if fault == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()  # no response at all: the client sees a disconnect
            raise asyncio.CancelledError  # aiohttp ends the connection's task quietly
        if fault == "timeout":
            await asyncio.sleep(config.timeout_delay)

        text, finish = _truncate(_cached_answer(prompt), body.get("stop"), body.get("max_tokens"))
        n = body.get("n")
        n = n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 16 else 1
        messages = body["messages"]
        prompt_tokens = sum(_words(_text(m.get("content"))) for m in messages)
        completion_tokens = _words(text) * n
        model = body.get("model")
        state.set_status(rec, 200)
        return web.json_response(
            {
                "id": state.next_id(),
                "object": "chat.completion",
                "created": int(received),
                "model": model if isinstance(model, str) else "reference",
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                    for i in range(n)
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def models(request: web.Request) -> web.Response:
        denied = key_error(request)
        if denied is not None:
            return denied
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "evalledger"}
            for name in ("reference", "judge")
        ]
        return web.json_response({"object": "list", "data": data})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state.stats())

    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", completions)
        app.router.add_get(f"{prefix}/models", models)
    app.router.add_get("/stats", stats)
    return app


def _runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=_SHUTDOWN_TIMEOUT,
        # a client that gives up (a timeout) or is dropped ends its handler at once
        handler_cancellation=True,
    )


async def _start_site(runner: web.AppRunner, port: int) -> int:
    """Listen on 127.0.0.1:``port``; return the bound port (the one chosen for port 0)."""
    site = web.TCPSite(runner, HOST, port, backlog=1024)
    await site.start()
    return int(runner.addresses[0][1])


async def _shutdown(runner: web.AppRunner, state: ServerState) -> None:
    """Cancel handlers still at work (stalls, latency), then close every connection."""
    tasks = list(state.tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()


# --------------------------------------------------------------------------- in-process


class ReferenceServer:
    """The server on 127.0.0.1 and an ephemeral port, in a background thread.

    The thread runs its own event loop. Use it as a context manager, or call
    :meth:`start` and :meth:`stop`; a stopped server keeps its stats but cannot restart.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.app = make_app(self.config)
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``/stats`` is under it)."""
        return f"http://{HOST}:{self.port}"

    @property
    def state(self) -> ServerState:
        """The requests seen, attempts per prompt, counters and peak concurrency."""
        return self.app[STATE]

    def stats(self) -> dict[str, Any]:
        """What ``GET /stats`` returns."""
        return self.state.stats()

    def reset(self) -> None:
        """Forget the requests seen so far (see :meth:`ServerState.reset`)."""
        self.state.reset()

    def start(self) -> ReferenceServer:
        """Start serving and wait until the port is bound; returns self."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("a ReferenceServer starts once")
        self._thread = threading.Thread(
            target=self._run, name="evalledger-reference-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):  # pragma: no cover - a wedged host
            raise RuntimeError("the reference server did not start within 10 s")
        if self._error is not None:
            self._thread.join()
            self._thread, self._stopped = None, True
            raise RuntimeError("the reference server failed to start") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = _runner(self.app)
        await runner.setup()
        try:
            self.port = await _start_site(runner, 0)
            self._ready.set()
            await self._stop.wait()
        finally:
            await _shutdown(runner, self.state)

    def stop(self) -> None:
        """Stop serving: cancel handlers in progress, close connections, join the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        self._stopped = True
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- process


def _parse_args(argv: Sequence[str] | None) -> tuple[int, ServerConfig]:
    defaults = ServerConfig()
    ap = argparse.ArgumentParser(
        prog="python -m evalledger.testing.openai_server",
        description="Deterministic OpenAI-compatible server with faults, on 127.0.0.1.",
    )
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    ap.add_argument("--latency", type=float, default=defaults.latency)
    ap.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    ap.add_argument(
        "--faults",
        default=",".join(defaults.faults),
        help=f"comma-separated kinds among {','.join(FAULTS)}",
    )
    ap.add_argument("--retry-after", type=float, default=defaults.retry_after)
    ap.add_argument("--retry-after-http-date", action="store_true")
    ap.add_argument("--timeout-delay", type=float, default=defaults.timeout_delay)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--fail-first", type=int, default=defaults.fail_first)
    ap.add_argument("--require-api-key", default=defaults.require_api_key)
    ap.add_argument(
        "--echo-authorization",
        action="store_true",
        help="quote the request's Authorization header in 401 and 500 error bodies",
    )
    args = ap.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(ServerConfig)}
    values["faults"] = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    try:
        config = ServerConfig(**values)
    except ValueError as exc:
        ap.error(str(exc))
    return args.port, config


async def _serve_forever(port: int, config: ServerConfig) -> None:
    app = make_app(config)
    runner = _runner(app)
    await runner.setup()
    try:
        bound = await _start_site(runner, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sys.stdout.write(f"READY http://{HOST}:{bound}/v1\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await _shutdown(runner, app[STATE])


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m evalledger.testing.openai_server``: serve until SIGTERM or SIGINT."""
    port, config = _parse_args(argv)
    asyncio.run(_serve_forever(port, config))


if __name__ == "__main__":
    main()
