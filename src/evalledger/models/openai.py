"""The ``openai`` adapter: any OpenAI-compatible chat-completions endpoint.

vLLM, Ollama, llama.cpp's server, TGI, OpenAI, Azure, Mistral and others speak this
protocol. Calls are async over one pooled aiohttp session per endpoint, limited by the
endpoint's ``max_concurrency`` and optional requests/tokens per minute, and retried with
exponential backoff and jitter (honouring ``Retry-After`` up to ``max_backoff``) on 429,
5xx, timeouts, dropped connections and malformed responses. A ``Retry-After`` longer than
``max_backoff`` is not waited for: the item errors at once with that reason, and
``evalledger run --resume`` tries it again later.

The API key is read from the environment variable named by ``api_key_env`` at call time;
it is never stored or written: the variable and the key are registered with
:mod:`evalledger.redact`, and every error text passes :func:`~evalledger.redact.scrub_text`,
so a key that an endpoint echoes in its error bodies is not recorded.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from evalledger.errors import ConfigError
from evalledger.models.base import Model, ModelSettings
from evalledger.plugin_types import Completion, SamplingSettings
from evalledger.redact import register_secret, register_secret_env, scrub_text

if TYPE_CHECKING:
    import aiohttp
    from aiolimiter import AsyncLimiter
    from tenacity import RetryCallState

    from evalledger.plugin_types import Item

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "MalformedResponseError",
    "ModelCallError",
    "OpenAIModel",
    "RateLimitError",
    "ServerError",
]


class ModelCallError(Exception):
    """A model call failed; ``transient`` errors are retried.

    The message is redacted (:func:`~evalledger.redact.scrub_text`): it quotes what the
    endpoint said, which may echo the key.
    """

    transient: bool = True

    def __init__(
        self, message: str, retry_after: float | None = None, *, transient: bool | None = None
    ) -> None:
        super().__init__(scrub_text(message))
        self.retry_after = retry_after
        if transient is not None:
            self.transient = transient


class RateLimitError(ModelCallError):
    """HTTP 429: the endpoint asks us to slow down."""


class ServerError(ModelCallError):
    """HTTP 5xx."""


class APITimeoutError(ModelCallError):
    """No complete response within the timeout."""


class APIConnectionError(ModelCallError):
    """The connection failed or was dropped."""


class MalformedResponseError(ModelCallError):
    """The response was not the JSON a chat completion should be."""


class BadRequestError(ModelCallError):
    """HTTP 4xx other than 429: retrying will not help."""

    transient = False


class AuthenticationError(BadRequestError):
    """HTTP 401/403: the key is missing, wrong or not allowed."""


class OpenAISettings(ModelSettings, SamplingSettings):
    """Settings of the ``openai`` adapter."""

    base_url: str = Field(pattern=r"^https?://\S+$")
    """e.g. ``http://localhost:8000/v1`` or ``https://api.openai.com/v1``."""
    model: str = Field(min_length=1)
    """The model name the endpoint knows."""
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the environment variable holding the key (never the key itself); it must
    be set when a cell of this model runs, which is checked before the first cell starts."""
    api_key_header: str = Field(default="Authorization", min_length=1)
    """``Authorization`` sends ``Bearer <key>``; any other header (Azure: ``api-key``)
    sends the key as is."""
    headers: dict[str, str] = {}
    """Extra HTTP headers."""
    path: str = "/chat/completions"
    """Appended to base_url."""
    query: dict[str, str] = {}
    """Query parameters (Azure: ``api-version``)."""
    system_prompt: str | None = None
    prompt_template: str = "{prompt}"
    """Wraps the benchmark's prompt; ``{prompt}`` is replaced by it (and must be there)."""

    @field_validator("prompt_template")
    @classmethod
    def _has_prompt(cls, value: str) -> str:
        if "{prompt}" not in value:
            raise ValueError("must contain {prompt}")
        return value

    extra_body: dict[str, Any] = {}
    """Further request fields, sent as given."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds for one attempt."""
    max_concurrency: int = Field(default=16, ge=1)
    max_retries: int = Field(default=4, ge=0)
    backoff: float = Field(default=0.5, ge=0)
    """Base of the exponential backoff, seconds."""
    max_backoff: float = Field(default=60.0, ge=0)
    """Longest wait between attempts, seconds; a longer ``Retry-After`` errors the item."""
    rpm: float | None = Field(default=None, gt=0)
    """Requests per minute for the endpoint."""
    tpm: float | None = Field(default=None, gt=0)
    """Tokens per minute for the endpoint (estimated before each call)."""


_DECODING_KEYS = tuple(SamplingSettings.model_fields)


@dataclass
class _Endpoint:
    """One pooled session, concurrency limit and rate limiters per base URL and loop."""

    session: aiohttp.ClientSession
    semaphore: asyncio.Semaphore
    rpm: AsyncLimiter | None
    tpm: AsyncLimiter | None
    users: int = 0


_ENDPOINTS: dict[tuple[int, str], _Endpoint] = {}


def _per_minute(rate: float | None) -> AsyncLimiter | None:
    """A limiter for ``rate`` per minute.

    It refills every second, so a burst is a second's worth of calls, not a minute's.
    """
    if not rate:
        return None
    from aiolimiter import AsyncLimiter

    return AsyncLimiter(rate / 60, 1) if rate >= 60 else AsyncLimiter(1, 60 / rate)


def _endpoint_key(s: OpenAISettings) -> tuple[int, str]:
    return id(asyncio.get_running_loop()), s.base_url.rstrip("/")


def _acquire_endpoint(s: OpenAISettings) -> _Endpoint:
    import aiohttp

    key = _endpoint_key(s)
    ep = _ENDPOINTS.get(key)
    if ep is None:
        connector = aiohttp.TCPConnector(limit=s.max_concurrency, limit_per_host=0)
        ep = _Endpoint(
            session=aiohttp.ClientSession(connector=connector, raise_for_status=False),
            semaphore=asyncio.Semaphore(s.max_concurrency),
            rpm=_per_minute(s.rpm),
            tpm=_per_minute(s.tpm),
        )
        _ENDPOINTS[key] = ep
    ep.users += 1
    return ep


async def _release_endpoint(s: OpenAISettings) -> None:
    key = _endpoint_key(s)
    ep = _ENDPOINTS.get(key)
    if ep is None:
        return
    ep.users -= 1
    if ep.users <= 0:
        del _ENDPOINTS[key]
        await ep.session.close()


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(raw: bytes) -> str:
    """The message of an error body (redacted whole, then cut: never half a key)."""
    try:
        body = json.loads(raw)
        error = body.get("error") if isinstance(body, dict) else None
        msg = error.get("message") if isinstance(error, dict) else None
    except ValueError:
        msg = None
    if msg:
        return scrub_text(str(msg)).strip()
    return scrub_text(raw[:65536].decode("utf-8", "replace"))[:200].strip()


class OpenAIModel(Model):
    """An OpenAI-compatible chat-completions endpoint (``adapter: openai``)."""

    Settings = OpenAISettings
    settings: OpenAISettings

    def __init__(self, name: str, settings: OpenAISettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        if settings.api_key_env:
            register_secret_env(settings.api_key_env)
        if settings.api_key_env and settings.api_key_env not in os.environ:
            raise ConfigError(
                f"models.{name}.api_key_env names {settings.api_key_env}, which is not set",
                f"export {settings.api_key_env}=<key> before running",
            )
        if "{prompt}" not in settings.prompt_template:
            raise ConfigError(f"models.{name}.prompt_template must contain {{prompt}}")
        self._endpoint: _Endpoint | None = None
        base = settings.base_url.rstrip("/")
        self._url = base + "/" + settings.path.lstrip("/")

    def _headers(self) -> dict[str, str]:
        s = self.settings
        headers = {"Content-Type": "application/json", **s.headers}
        if s.api_key_env:
            key = os.environ.get(s.api_key_env, "")
            register_secret(key)  # kept even if the variable is unset later
            headers[s.api_key_header] = (
                f"Bearer {key}" if s.api_key_header.lower() == "authorization" else key
            )
        return headers

    def _body(self, prompt: str, decoding: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        messages = []
        system = decoding.get("system") or s.system_prompt  # a prompt file's, else ours
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": s.prompt_template.replace("{prompt}", prompt)})
        body: dict[str, Any] = {"model": s.model, "messages": messages}
        for key in _DECODING_KEYS:
            value = decoding.get(key, getattr(s, key))
            if value is not None:
                body[key] = value
        extra = {k: v for k, v in decoding.items() if k not in _DECODING_KEYS and k != "system"}
        body.update(s.extra_body)
        body.update(extra)
        return body

    def cache_identity(self) -> dict[str, Any] | None:
        """The endpoint and model: with the request body, what an answer depends on."""
        s = self.settings
        return {"adapter": "openai", "url": self._url, "query": s.query, "model": s.model}

    def cache_request(self, prompt: str, decoding: dict[str, Any]) -> dict[str, Any]:
        """The chat-completions body: messages and decoding, a sample's seed included."""
        return self._body(prompt, decoding)

    def _delay(self, exc: BaseException | None, retry: int) -> float:
        """Seconds before retry number ``retry``: Retry-After, else full-jitter backoff."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)  # the server knows best; honour it exactly
        import random

        s = self.settings
        return random.uniform(0, min(s.max_backoff, s.backoff * 2 ** (retry - 1)))

    def _wait(self, state: RetryCallState) -> float:
        # tenacity counts attempts of its own loop, which starts after our first try
        exc = state.outcome.exception() if state.outcome else None
        return self._delay(exc, state.attempt_number + 1)

    async def agenerate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """One chat completion, retried per the policy; raises ModelCallError on failure."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        if self._endpoint is None:
            self._endpoint = _acquire_endpoint(self.settings)
        body = self._body(prompt, decoding)
        payload = json.dumps(body).encode()
        headers = self._headers()
        try:  # the common case, without building a retry controller per call
            return await self._attempt(payload, headers, body)
        except ModelCallError as exc:
            if not exc.transient or self.settings.max_retries == 0:
                raise
            await asyncio.sleep(self._delay(exc, 1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ModelCallError) and e.transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(payload, headers, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, payload: bytes, headers: dict[str, str], body: dict[str, Any]
    ) -> Completion:
        import aiohttp

        ep = self._endpoint
        assert ep is not None
        s = self.settings
        async with ep.semaphore:
            if ep.rpm is not None:
                await ep.rpm.acquire()
            if ep.tpm is not None:
                words = sum(len(m["content"].split()) for m in body["messages"])
                await ep.tpm.acquire(min(ep.tpm.max_rate, words * 1.3 + (s.max_tokens or 256)))
            try:
                async with ep.session.post(
                    self._url,
                    data=payload,
                    headers=headers,
                    params=s.query or None,
                    timeout=aiohttp.ClientTimeout(total=s.timeout),
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    raw = await resp.read()
            except TimeoutError:
                raise APITimeoutError(f"no response within {s.timeout:g}s") from None
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                raise APIConnectionError(f"{type(exc).__name__}: {exc}") from None
        if status == 429:
            wait = _parse_retry_after(retry_after)
            if wait is not None and wait > s.max_backoff:
                # Waiting would stall the run: the item errors now, `run --resume` retries it.
                raise RateLimitError(
                    f"Retry-After {wait:g} s exceeds max_backoff {s.max_backoff:g} s",
                    wait,
                    transient=False,
                )
            raise RateLimitError(f"429: {_error_message(raw)}", wait)
        if status >= 500:
            raise ServerError(f"{status}: {_error_message(raw)}")
        if status in (401, 403):
            raise AuthenticationError(f"{status}: {_error_message(raw)}")
        if status >= 400:
            raise BadRequestError(f"{status}: {_error_message(raw)}")
        try:
            data = json.loads(raw)
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            snippet = scrub_text(raw[:65536].decode("utf-8", "replace"))[:120]
            raise MalformedResponseError(
                f"unexpected response ({type(exc).__name__}): {snippet!r}"
            ) from None
        return Completion(
            text=str(text or ""),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    async def aclose(self) -> None:
        """Release this model's share of the endpoint's session."""
        if self._endpoint is not None:
            self._endpoint = None
            await _release_endpoint(self.settings)
