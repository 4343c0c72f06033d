"""OpenAI-compatible chat-completions over HTTP (OpenAI, vLLM, llama.cpp server, Ollama, TGI).

Standard library only. Every request gets a timeout; 429, 408, 5xx, timeouts, dropped connections
and unreadable response bodies are retried with exponential backoff and full jitter (``Retry-After``
is honoured when the server sends it). Concurrency and requests-per-minute limits are shared by all
threads using the backend.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import BackendError, ChatBackend, ChatResponse, FatalBackendError, Message, register_llm_backend

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_FATAL_STATUS = frozenset({401, 403, 404})
ENV_BASE_URL = ("MOLORA_LLM_BASE_URL", "OPENAI_BASE_URL")
ENV_API_KEY = ("MOLORA_LLM_API_KEY", "OPENAI_API_KEY")
ENV_MODEL = ("MOLORA_LLM_MODEL",)


def _env(names: tuple[str, ...]) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


@dataclass
class OpenAIHTTPConfig:
    """Settings of :class:`OpenAIHTTPBackend`; missing ``base_url``/``api_key``/``model`` come from the environment.

    Args:
        base_url (`str`, *optional*): API root ending before ``/chat/completions``, e.g.
            ``https://api.openai.com/v1`` or ``http://localhost:8000/v1``. Env: ``MOLORA_LLM_BASE_URL``,
            ``OPENAI_BASE_URL``.
        model (`str`, *optional*): model name sent with each request. Env: ``MOLORA_LLM_MODEL``.
        api_key (`str`, *optional*): bearer token. Env: ``MOLORA_LLM_API_KEY``, ``OPENAI_API_KEY``.
            Local servers without authentication accept any value, e.g. ``EMPTY``.
        timeout (`float`, *optional*, defaults to 120): seconds to wait for the server to connect or to send
            the next bytes of its response; a hung connection is retried after this.
        max_retries (`int`, *optional*, defaults to 8): retries of a failed request before giving up.
        backoff_base (`float`, *optional*, defaults to 1.0): first backoff ceiling in seconds (doubled each retry).
        backoff_max (`float`, *optional*, defaults to 60.0): largest backoff ceiling in seconds.
        max_retry_after (`float`, *optional*, defaults to 600.0): cap on a server's ``Retry-After``.
        requests_per_minute (`float`, *optional*): rate limit over all threads; `None` for none.
        concurrency (`int`, *optional*, defaults to 4): requests in flight at most.
        extra_body (`dict`, *optional*): extra JSON fields for every request (e.g. ``{"seed": 0}``).
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 600.0
    requests_per_minute: float | None = None
    concurrency: int = 4
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = self.base_url or _env(ENV_BASE_URL)
        self.api_key = self.api_key or _env(ENV_API_KEY)
        self.model = self.model or _env(ENV_MODEL)
        if not self.base_url:
            raise ValueError(
                "`base_url` is missing: pass `--base-url` (e.g. https://api.openai.com/v1 or "
                f"http://localhost:8000/v1) or set {' or '.join(ENV_BASE_URL)}."
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"`base_url` must start with http:// or https://, got {self.base_url!r}.")
        self.base_url = self.base_url.rstrip("/")
        if self.base_url.endswith("/chat/completions"):
            self.base_url = self.base_url[: -len("/chat/completions")]
        if not self.api_key:
            raise ValueError(
                f"`api_key` is missing: pass `--api-key` or set {' or '.join(ENV_API_KEY)} "
                "(for a local server without authentication, any value such as `EMPTY` works)."
            )
        if not self.model:
            raise ValueError(f"`model` is missing: pass `--model` or set {ENV_MODEL[0]}.")
        for name in ("timeout", "backoff_base", "backoff_max", "max_retry_after"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}.")
        if self.max_retries < 0:
            raise ValueError(f"`max_retries` must be >= 0, got {self.max_retries!r}.")
        if self.concurrency < 1:
            raise ValueError(f"`concurrency` must be >= 1, got {self.concurrency!r}.")
        if self.requests_per_minute is not None and not self.requests_per_minute > 0:
            raise ValueError(f"`requests_per_minute` must be > 0 or None, got {self.requests_per_minute!r}.")


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart, across threads."""

    def __init__(
        self, requests_per_minute: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            sleep(start - now)


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or `None`."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIHTTPBackend(ChatBackend):
    """Chat completions from any OpenAI-compatible server.

    Args:
        config (`OpenAIHTTPConfig`, *optional*): settings; alternatively pass its fields as keywords.
        sleep (`Callable[[float], None]`, *optional*): used for backoff (tests pass a recorder).
    """

    name = "openai"

    def __init__(
        self, config: OpenAIHTTPConfig | None = None, *, sleep: Callable[[float], None] = time.sleep, **kwargs
    ) -> None:
        self.config = config if config is not None else OpenAIHTTPConfig(**kwargs)
        self.model = self.config.model
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(self.config.concurrency)
        self._limiter = RateLimiter(self.config.requests_per_minute)
        self.retries = 0  # total retries so far, for reporting
        self._stat_lock = threading.Lock()

    def _post(self, body: bytes) -> dict:
        req = urllib.request.Request(
            f"{self.config.base_url}/chat/completions",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.config.api_key}",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                detail = e.read()[:300].decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                detail = ""
            if e.code in _RETRY_STATUS or e.code >= 500:
                retry_after = parse_retry_after(e.headers.get("Retry-After"))
                raise _Transient(f"HTTP {e.code}: {detail}", retry_after) from None
            msg = f"HTTP {e.code} from {self.config.base_url}: {detail}"
            if e.code in _FATAL_STATUS:
                hint = {401: "check the API key", 403: "check the API key's permissions"}.get(
                    e.code, "check `base_url` and `model`"
                )
                raise FatalBackendError(f"{msg} ({hint}).") from None
            raise BackendError(msg) from None
        except (TimeoutError, http.client.HTTPException, ConnectionError) as e:
            raise _Transient(f"{type(e).__name__}: {e}") from None
        except urllib.error.URLError as e:
            raise _Transient(f"connection failed: {e.reason}") from None
        try:
            payload = json.loads(raw)
            choice = payload["choices"][0]
            content = choice["message"]["content"]
            if content is None:
                raise TypeError("null content")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Transient(f"malformed response body ({type(e).__name__}): {raw[:200]!r}") from None
        return payload

    def chat(self, messages: list[Message], *, max_tokens: int, temperature: float) -> ChatResponse:
        body = json.dumps(
            {
                "model": self.config.model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
                **self.config.extra_body,
            }
        ).encode()
        last = ""
        for attempt in range(self.config.max_retries + 1):
            self._limiter.wait(self._sleep)
            try:
                with self._slots:
                    payload = self._post(body)
            except _Transient as e:
                last = str(e)
                if attempt == self.config.max_retries:
                    break
                with self._stat_lock:
                    self.retries += 1
                ceiling = min(self.config.backoff_max, self.config.backoff_base * 2**attempt)
                delay = random.uniform(0, ceiling)
                if e.retry_after is not None:
                    delay = min(self.config.max_retry_after, e.retry_after) + random.uniform(0, 0.1)
                self._sleep(delay)
                continue
            usage = payload.get("usage") or {}
            return ChatResponse(
                text=payload["choices"][0]["message"]["content"],
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        raise BackendError(f"gave up after {self.config.max_retries + 1} attempts; last error: {last}")


register_llm_backend("openai", OpenAIHTTPBackend)
