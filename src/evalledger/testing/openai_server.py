"""A deterministic OpenAI-compatible chat-completions server with injectable faults.

The test suite and the benchmarks start it on 127.0.0.1 to exercise the ``openai``
adapter over real HTTP. Answers are deterministic: ``REPLY: text`` in the prompt is
echoed back; an arithmetic word problem is solved; anything else gets "I don't know.".
Faults (429 with ``Retry-After``, 500, a stalled response, malformed JSON, a dropped
connection) are drawn per request with a seeded RNG at ``fault_rate``, or given to the
first ``fail_first`` attempts of every distinct prompt.

Run it as a process::

    python -m evalledger.testing.openai_server --port 0 --latency 0.05
    # prints: READY http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FAULTS", "ReferenceServer", "ServerConfig", "answer"]

FAULTS = ("429", "500", "timeout", "malformed", "drop")


@dataclass
class ServerConfig:
    """How the reference server behaves."""

    latency: float = 0.0
    """Seconds added to every response."""
    fault_rate: float = 0.0
    """Probability that a request gets a fault (drawn with ``seed``)."""
    faults: tuple[str, ...] = FAULTS
    """Fault kinds to draw from."""
    retry_after: float = 1.0
    """Value of Retry-After on 429s (seconds)."""
    retry_after_http_date: bool = False
    """Send Retry-After as an HTTP date instead of seconds."""
    timeout_delay: float = 30.0
    """How long a "timeout" fault stalls before answering."""
    seed: int = 0
    fail_first: int = 0
    """The first N attempts of every distinct prompt fail, cycling through ``faults``."""
    require_api_key: str | None = None
    """If set, requests must send ``Authorization: Bearer <key>``."""


_GRADE = re.compile(r"Reference answer:\s*(.*?)\s*\n.*?Answer to grade:(.*)", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def answer(prompt: str) -> str:
    """The deterministic reply to a prompt.

    ``REPLY: text`` is echoed; a grading prompt (``Reference answer: X`` ... ``Answer to
    grade: ... N``) is judged CORRECT when N equals X; an arithmetic problem is solved.
    """
    graded = _GRADE.search(prompt)
    if graded:
        numbers = _NUMBER.findall(graded.group(2))
        ok = bool(numbers) and numbers[-1] == graded.group(1).strip()
        return "CORRECT" if ok else "INCORRECT"
    marker = prompt.find("REPLY:")
    if marker >= 0:
        return prompt[marker + len("REPLY:") :].split("\n", 1)[0].strip()
    from evalledger.models.baseline import solve

    solved = solve(prompt)
    return "I don't know." if solved is None else f"The answer is {solved}."


def _error(status: int, message: str, kind: str, **headers: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status, headers=headers)


@dataclass
class _State:
    config: ServerConfig
    rng: random.Random = field(init=False)
    requests: list[dict[str, Any]] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def fault_for(self, prompt: str) -> str | None:
        cfg = self.config
        n = self.attempts[prompt]
        self.attempts[prompt] += 1
        if cfg.fail_first and n < cfg.fail_first:
            return cfg.faults[n % len(cfg.faults)]
        if cfg.fault_rate and self.rng.random() < cfg.fault_rate:
            return cfg.faults[int(self.rng.random() * len(cfg.faults))]
        return None

    def stats(self) -> dict[str, Any]:
        faults = Counter(r["fault"] for r in self.requests if r["fault"])
        return {
            "requests": len(self.requests),
            "faults": dict(faults),
            "prompts": dict(self.attempts),
            "max_concurrency": self.peak,
            "authorization": sorted({r["authorization"] for r in self.requests}),
        }


STATE: web.AppKey[_State] = web.AppKey("state", _State)


def make_app(config: ServerConfig) -> web.Application:
    """The aiohttp application; its state is ``app[STATE]``."""
    state = _State(config)
    app = web.Application()
    app[STATE] = state

    async def completions(request: web.Request) -> web.StreamResponse:
        state.in_flight += 1
        state.peak = max(state.peak, state.in_flight)
        try:
            return await _complete(request)
        finally:
            state.in_flight -= 1

    async def _complete(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        try:
            body = await request.json()
            messages = body["messages"]
            prompt = str(messages[-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            return _error(400, "request body must have messages", "invalid_request_error")
        record = {"t": time.time(), "prompt": prompt, "fault": None, "authorization": auth}
        state.requests.append(record)
        if config.require_api_key and auth != f"Bearer {config.require_api_key}":
            record["fault"] = "auth"
            return _error(401, "Incorrect API key provided.", "invalid_request_error")
        fault = state.fault_for(prompt)
        record["fault"] = fault
        if config.latency:
            await asyncio.sleep(config.latency)
        if fault == "429":
            value = (
                email.utils.formatdate(time.time() + config.retry_after, usegmt=True)
                if config.retry_after_http_date
                else f"{config.retry_after:g}"
            )
            return _error(429, "Rate limit reached.", "rate_limit_error", **{"Retry-After": value})
        if fault == "500":
            return _error(500, "The server had an error.", "server_error")
        if fault == "malformed":
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault == "timeout":
            await asyncio.sleep(config.timeout_delay)
        text = answer(prompt)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return web.json_response({
            "id": f"chatcmpl-{len(state.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "reference"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_tokens + len(text.split())},
        })  # fmt: skip

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "reference"}]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state.stats())

    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    return app


def _bound_port(site: web.TCPSite) -> int:
    server: Any = site._server  # the port chosen for port 0 is only on the socket
    return int(server.sockets[0].getsockname()[1])


class ReferenceServer:
    """The server on 127.0.0.1 in a background thread, for tests (a context manager)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.app = make_app(self.config)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def state(self) -> _State:
        """Requests seen, attempts per prompt, peak concurrency."""
        return self.app[STATE]

    def stats(self) -> dict[str, Any]:
        """What ``GET /stats`` returns."""
        return self.state.stats()

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = _bound_port(site)

    def start(self) -> ReferenceServer:
        """Start serving; returns self."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            fut.result(timeout=10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """``python -m evalledger.testing.openai_server``."""
    ap = argparse.ArgumentParser(description="Reference OpenAI-compatible server (127.0.0.1).")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--retry-after-http-date", action="store_true")
    ap.add_argument("--timeout-delay", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--require-api-key", default=None)
    args = ap.parse_args()
    config = ServerConfig(
        latency=args.latency, fault_rate=args.fault_rate,
        faults=tuple(f for f in args.faults.split(",") if f), retry_after=args.retry_after,
        retry_after_http_date=args.retry_after_http_date, timeout_delay=args.timeout_delay,
        seed=args.seed, fail_first=args.fail_first, require_api_key=args.require_api_key,
    )  # fmt: skip

    async def serve() -> None:
        runner = web.AppRunner(
            make_app(config), access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        print(f"READY http://127.0.0.1:{_bound_port(site)}/v1", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
