"""The reference OpenAI-compatible server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from evalledger.models.baseline import solve
from evalledger.testing.openai_server import (
    FAULTS,
    ReferenceServer,
    ServerConfig,
    answer,
    main,
)

Serve = Callable[..., ReferenceServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start servers with the given config fields; all are stopped after the test."""
    servers: list[ReferenceServer] = []

    def start(**config: Any) -> ReferenceServer:
        server = ReferenceServer(ServerConfig(**config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def content(self) -> str:
        return str(self.json()["choices"][0]["message"]["content"])


def _body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "ref-model", "messages": [{"role": "user", "content": prompt}], **extra}


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Reply:
    payload = _body(body) if isinstance(body, str) else body
    async with session.post(
        url + "/chat/completions",
        json=payload,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        return Reply(resp.status, dict(resp.headers), await resp.read())


def _ask(url: str, *bodies: dict[str, Any] | str, **kw: Any) -> list[Reply]:
    """POST each body in turn over one session."""

    async def run() -> list[Reply]:
        async with aiohttp.ClientSession() as session:
            return [await _post(session, url, body, **kw) for body in bodies]

    return asyncio.run(run())


def _get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# ------------------------------------------------------------------------- answers


def test_answers_and_response_shape(serve: Serve) -> None:
    server = serve()
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1" and server.port > 0
    problem = "Mia has 12 marbles. She buys 30 more. How many marbles does Mia have now?"
    assert solve(problem) == 42
    before = int(time.time())
    replies = _ask(
        server.base_url,
        "Say it back.\nREPLY:   Paris is  the capital.  \nignored line",
        problem,
        "Tom buys 4 boxes with 6 pencils in each box. How many pencils?",
        "What is the meaning of life?",
    )
    assert [r.status for r in replies] == [200] * 4
    assert [r.content for r in replies] == [
        "Paris is  the capital.",
        "The answer is 42.",
        "The answer is 24.",
        "I don't know.",
    ]
    data = replies[1].json()
    assert set(data) == {"id", "object", "created", "model", "choices", "usage"}
    assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
    assert isinstance(data["created"], int) and before <= data["created"] <= time.time() + 1
    assert data["model"] == "ref-model"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The answer is 42."},
            "finish_reason": "stop",
        }
    ]
    words = len(problem.split())
    assert data["usage"] == {
        "prompt_tokens": words,
        "completion_tokens": 4,
        "total_tokens": words + 4,
    }
    assert replies[1].headers["Content-Type"].startswith("application/json")
    assert len({r.json()["id"] for r in replies}) == 4


def test_last_user_message_decides_and_usage_counts_every_message(serve: Serve) -> None:
    server = serve()
    body = {
        "model": "m",
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "messages": [
            {"role": "system", "content": "You are terse. REPLY: system"},
            {"role": "user", "content": "REPLY: first"},
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "REPLY: second one"}]},
            {"role": "assistant", "content": "REPLY: prefill"},
        ],
    }
    (reply,) = _ask(server.base_url, body)
    assert reply.content == "second one"
    assert reply.json()["usage"] == {
        "prompt_tokens": 5 + 2 + 1 + 3 + 2,
        "completion_tokens": 2,
        "total_tokens": 15,
    }
    assert server.state.requests[0]["prompt"] == "REPLY: second one"


def test_plain_path_models_and_decoding_fields(serve: Serve) -> None:
    server = serve()
    root = server.base_url.removesuffix("/v1")
    (plain,) = _ask(root, "REPLY: no v1 prefix")
    assert plain.content == "no v1 prefix"
    status, models = _get_json(server.base_url + "/models")
    assert status == 200 and models["object"] == "list"
    assert "reference" in [m["id"] for m in models["data"]]
    long, stopped, several = _ask(
        server.base_url,
        _body("REPLY: one two three four five", max_tokens=2),
        _body("REPLY: alpha beta. gamma", stop=["."]),
        _body("REPLY: same", n=3),
    )
    assert long.content == "one two" and long.json()["choices"][0]["finish_reason"] == "length"
    assert long.json()["usage"]["completion_tokens"] == 2
    assert stopped.content == "alpha beta"
    assert [c["message"]["content"] for c in several.json()["choices"]] == ["same"] * 3


def test_bad_requests_get_openai_style_400(serve: Serve) -> None:
    server = serve()
    no_messages, empty, streaming = _ask(
        server.base_url,
        {"model": "m"},
        {"model": "m", "messages": []},
        _body("REPLY: x", stream=True),
    )
    for reply in (no_messages, empty, streaming):
        assert reply.status == 400
        assert reply.json()["error"]["type"] == "invalid_request_error"
    assert server.stats()["statuses"] == {"400": 3}


def test_judge_prompts_are_graded() -> None:
    rubric = "Question: q\nReference answer: {t}\nAnswer to grade: {o}\nReply with one word."
    assert answer(rubric.format(t="42", o="The answer is 42.")) == "CORRECT"
    assert answer(rubric.format(t="42", o="The answer is 41.")) == "INCORRECT"
    assert answer(rubric.format(t="Paris", o="paris")) == "CORRECT"


# ------------------------------------------------------------------------- faults


def test_429_sends_retry_after_as_given_and_an_error_body(serve: Serve) -> None:
    server = serve(fail_first=1, faults=("429",), retry_after=0.2)
    limited, ok = _ask(server.base_url, "REPLY: a", "REPLY: a")
    assert limited.status == 429 and limited.headers["Retry-After"] == "0.2"
    error = limited.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert ok.status == 200 and ok.content == "a"

    server.config.retry_after = 3.0
    server.reset()
    (limited,) = _ask(server.base_url, "REPLY: a")
    assert limited.headers["Retry-After"] == "3"


def test_429_retry_after_as_http_date(serve: Serve) -> None:
    server = serve(fail_first=1, faults=("429",), retry_after=2, retry_after_http_date=True)
    now = time.time()
    (limited,) = _ask(server.base_url, "REPLY: a")
    when = email.utils.parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert limited.headers["Retry-After"].endswith(" GMT")
    assert now + 2 <= when <= time.time() + 3  # rounded up to a whole second


def test_500_and_malformed(serve: Serve) -> None:
    server = serve(fail_first=2, faults=("500", "malformed"))

    async def run() -> tuple[int, Any, int]:
        async with aiohttp.ClientSession() as session:
            first = await _post(session, server.base_url, "REPLY: x")
            async with session.post(
                server.base_url + "/chat/completions", json=_body("REPLY: x")
            ) as resp:
                assert resp.content_type == "application/json"
                with pytest.raises(json.JSONDecodeError):
                    await resp.json()
                status = resp.status
            third = await _post(session, server.base_url, "REPLY: x")
            return first.status, first.json(), status if third.content == "x" else -1

    status_500, body_500, status_malformed = asyncio.run(run())
    assert status_500 == 500 and body_500["error"]["type"] == "server_error"
    assert status_malformed == 200


def test_drop_closes_the_connection_without_a_response(serve: Serve) -> None:
    server = serve(fail_first=1, faults=("drop",))

    async def run() -> Reply:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await _post(session, server.base_url, "REPLY: gone")
            return await _post(session, server.base_url, "REPLY: gone")

    assert asyncio.run(run()).content == "gone"
    first, second = server.state.requests
    assert (first["fault"], first["status"]) == ("drop", None)
    assert (second["fault"], second["status"]) == (None, 200)


def test_timeout_stalls_then_answers(serve: Serve) -> None:
    server = serve(fail_first=2, faults=("timeout",), timeout_delay=0.4)

    async def run() -> tuple[Reply, float, Reply]:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await _post(session, server.base_url, "REPLY: slow", timeout=0.1)
            start = time.monotonic()
            stalled = await _post(session, server.base_url, "REPLY: slow")
            elapsed = time.monotonic() - start
            return stalled, elapsed, await _post(session, server.base_url, "REPLY: slow")

    stalled, elapsed, fast = asyncio.run(run())
    assert stalled.status == 200 and stalled.content == "slow" and elapsed >= 0.4
    assert fast.content == "slow"
    records = server.state.requests
    assert [r["fault"] for r in records] == ["timeout", "timeout", None]
    # the client that gave up ended its handler: nothing was sent, nothing is in flight
    assert [r["status"] for r in records] == [None, 200, 200]
    assert server.stats()["active"] == 0


def _classify(server: ReferenceServer, n: int) -> list[str]:
    """Send n distinct prompts in turn; what the client saw for each."""

    async def run() -> list[str]:
        seen = []
        async with aiohttp.ClientSession() as session:
            for i in range(n):
                try:
                    reply = await _post(session, server.base_url, f"REPLY: {i}")
                except aiohttp.ServerDisconnectedError:
                    seen.append("drop")
                    continue
                if reply.status != 200:
                    seen.append(str(reply.status))
                else:
                    try:
                        seen.append("ok" if reply.content == str(i) else "wrong")
                    except json.JSONDecodeError:
                        seen.append("malformed")
        return seen

    return asyncio.run(run())


def test_fault_rate_matches_and_is_seeded(serve: Serve) -> None:
    kinds = ("429", "500", "malformed", "drop")
    seen = _classify(serve(fault_rate=0.25, faults=kinds, seed=11), 300)
    faulted = [s for s in seen if s != "ok"]
    assert abs(len(faulted) / 300 - 0.25) < 0.06
    assert set(faulted) == set(kinds)  # every kind is drawn, and nothing else happens
    assert min(faulted.count(k) for k in kinds) >= 8
    assert _classify(serve(fault_rate=0.25, faults=kinds, seed=11), 300) == seen
    assert _classify(serve(fault_rate=0.25, faults=kinds, seed=12), 300) != seen
    assert set(_classify(serve(fault_rate=1.0, faults=("500",)), 20)) == {"500"}
    assert set(_classify(serve(fault_rate=0.0), 20)) == {"ok"}


def test_fail_first_cycles_per_prompt_then_succeeds(serve: Serve) -> None:
    server = serve(fail_first=5, faults=("429", "500"), retry_after=0, fault_rate=1.0)
    prompts = ["REPLY: a", "REPLY: b", "REPLY: a", "REPLY: b"] * 4
    statuses = [r.status for r in _ask(server.base_url, *prompts)]
    per_prompt = {p: [s for q, s in zip(prompts, statuses, strict=True) if q == p] for p in prompts}
    assert per_prompt == {
        "REPLY: a": [429, 500, 429, 500, 429, 200, 200, 200],
        "REPLY: b": [429, 500, 429, 500, 429, 200, 200, 200],
    }
    assert server.stats()["faults"] == {"429": 6, "500": 4}
    server.state.attempts.clear()  # a fresh round of attempts
    assert [r.status for r in _ask(server.base_url, "REPLY: a", "REPLY: a")] == [429, 500]


# ------------------------------------------------------------------------- key, stats


def test_require_api_key(serve: Serve) -> None:
    server = serve(require_api_key="sk-right", fail_first=1, faults=("500",))
    missing, wrong, first, second = [
        _ask(server.base_url, "REPLY: k", headers=h)[0]
        for h in (
            None,
            {"Authorization": "Bearer sk-wrong"},
            {"Authorization": "Bearer sk-right"},
            {"Authorization": "Bearer sk-right"},
        )
    ]
    for reply in (missing, wrong):
        assert reply.status == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"
    # refused requests do not use up the prompt's fail_first attempts
    assert (first.status, second.status, second.content) == (500, 200, "k")
    assert _get_json(server.base_url + "/models")[0] == 401
    ok = {"Authorization": "Bearer sk-right"}
    assert _get_json(server.base_url + "/models", ok)[0] == 200
    stats = server.stats()
    assert stats["authorization"] == ["Bearer sk-right", "Bearer sk-wrong"]
    assert stats["statuses"] == {"200": 1, "401": 2, "500": 1}
    assert [r["authorization"] for r in server.state.requests][:2] == [None, "Bearer sk-wrong"]


def test_echo_authorization_quotes_the_header_in_401_and_500_bodies(serve: Serve) -> None:
    server = serve(require_api_key="sk-right", echo_authorization=True, fail_first=1,
                   faults=("500",))  # fmt: skip
    wrong, failed, ok = [
        _ask(server.base_url, "REPLY: k", headers={"Authorization": f"Bearer {key}"})[0]
        for key in ("sk-wrong", "sk-right", "sk-right")
    ]
    assert wrong.status == 401 and failed.status == 500 and ok.content == "k"
    for reply, key in ((wrong, "sk-wrong"), (failed, "sk-right")):
        error = reply.json()["error"]
        assert error["message"].endswith(f" Received Authorization: Bearer {key}")
        assert error["authorization"] == f"Bearer {key}"
    status, body = _get_json(server.base_url + "/models", {"Authorization": "Bearer nope"})
    assert status == 401 and body["error"]["authorization"] == "Bearer nope"
    # Off by default: nothing of the header in the body.
    quiet = serve(require_api_key="sk-right")
    reply = _ask(quiet.base_url, "REPLY: k", headers={"Authorization": "Bearer sk-wrong"})[0]
    assert reply.status == 401 and b"sk-wrong" not in reply.raw
    assert "authorization" not in reply.json()["error"]


def test_echo_authorization_is_a_process_flag() -> None:
    from evalledger.testing.openai_server import _parse_args

    assert _parse_args(["--echo-authorization"])[1].echo_authorization is True
    assert _parse_args([])[1].echo_authorization is False


def test_stats_over_http_and_in_python(serve: Serve) -> None:
    server = serve(latency=0.2, fail_first=1, faults=("500",))

    async def run() -> list[Reply]:
        async with aiohttp.ClientSession() as session:
            prompts = [f"REPLY: {i % 4}" for i in range(10)]
            return await asyncio.gather(*(_post(session, server.base_url, p) for p in prompts))

    start = time.time()
    replies = asyncio.run(run())
    assert sorted(r.status for r in replies) == [200] * 6 + [500] * 4
    status, over_http = _get_json(server.base_url.removesuffix("/v1") + "/stats")
    assert status == 200 and over_http == server.stats()
    assert over_http["requests"] == 10
    assert over_http["max_concurrency"] == 10  # all ten were in flight during the latency
    assert over_http["active"] == 0
    assert over_http["faults"] == {"500": 4}
    assert over_http["prompts"] == {"REPLY: 0": 3, "REPLY: 1": 3, "REPLY: 2": 2, "REPLY: 3": 2}
    assert over_http["statuses"] == {"200": 6, "500": 4}
    records = server.state.requests
    assert all(start <= r["t"] <= start + 0.2 for r in records)  # time received
    assert sorted(r["fault"] or "" for r in records) == [""] * 6 + ["500"] * 4
    assert {r["authorization"] for r in records} == {None}

    server.reset()
    assert server.stats()["requests"] == 0 and server.stats()["max_concurrency"] == 0


def test_binds_only_loopback(serve: Serve) -> None:
    server = serve()
    table = "/proc/net/tcp"
    if not os.path.exists(table):
        pytest.skip("no /proc/net/tcp")
    listening = []
    for path in (table, "/proc/net/tcp6"):
        if os.path.exists(path):
            with open(path) as fh:
                for line in fh.readlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    address, port = local.split(":")
                    if state == "0A" and int(port, 16) == server.port:  # LISTEN
                        listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, and nothing on IPv6 or 0.0.0.0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        ServerConfig(faults=("429", "teapot"))
    with pytest.raises(ValueError, match="fault_rate"):
        ServerConfig(fault_rate=1.5)
    with pytest.raises(ValueError, match="faults must name"):
        ServerConfig(fault_rate=0.5, faults=())
    with pytest.raises(SystemExit) as exc:
        main(["--faults", "429,teapot"])
    assert exc.value.code == 2
    assert ServerConfig(faults=["drop"]).faults == ("drop",)  # type: ignore[arg-type]
    assert set(FAULTS) == {"429", "500", "timeout", "malformed", "drop"}


# ------------------------------------------------------------------------- lifecycle


def _stop_while_stalled() -> None:
    server = ReferenceServer(ServerConfig(fault_rate=1.0, faults=("timeout",))).start()
    assert server.config.timeout_delay == 30.0

    async def run() -> tuple[BaseException | None, float]:
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(_post(session, server.base_url, "REPLY: z"))
            while server.stats()["active"] < 1:
                await asyncio.sleep(0.01)
            start = time.monotonic()
            await asyncio.to_thread(server.stop)
            took = time.monotonic() - start
            try:
                await request
            except aiohttp.ClientError as exc:
                return exc, took
            return None, took

    error, took = asyncio.run(run())
    assert took < 1.0
    assert isinstance(error, aiohttp.ServerDisconnectedError)
    assert not [t for t in threading.enumerate() if t.name == "evalledger-reference-server"]
    assert server.state.requests[0]["status"] is None
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()
    server.stop()  # idempotent


def test_stop_is_quick_and_clean_while_a_timeout_fault_sleeps() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _stop_while_stalled()
        gc.collect()
    resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert resource == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_prints_ready_serves_and_exits_on_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evalledger.testing.openai_server",
            "--port",
            "0",
            "--latency",
            "0.01",
            "--fail-first",
            "1",
            "--faults",
            "429",
            "--retry-after",
            "0.25",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"READY (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        base_url = match.group(1)
        limited, ok = _ask(base_url, "REPLY: from a process", "REPLY: from a process")
        assert limited.status == 429 and limited.headers["Retry-After"] == "0.25"
        assert ok.content == "from a process"
        status, stats = _get_json(base_url.removesuffix("/v1") + "/stats")
        assert status == 200 and stats["requests"] == 2 and stats["faults"] == {"429": 1}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == ""  # READY was the one and only line
    assert "Traceback" not in err
