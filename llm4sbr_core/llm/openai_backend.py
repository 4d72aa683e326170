"""Generation backend for any OpenAI-compatible chat-completions server.

Works with vLLM, SGLang, the llama.cpp server, Ollama and hosted endpoints: it POSTs to
``{base_url}/chat/completions`` with plain ``requests`` (no ``openai`` package). Requests
run concurrently (at most ``concurrency`` in flight) and are retried with exponential
backoff on connection errors, timeouts and HTTP 408/409/429/5xx.

Options (the backend's ``settings.options`` block):

``base_url``     required, e.g. ``http://localhost:8000/v1``
``api_key_env``  name of the environment variable holding the API key (default
                 ``OPENAI_API_KEY``); unset means no ``Authorization`` header
``concurrency``  requests in flight at most (default 8)
``timeout_s``    connect and read timeout of one request, seconds (default 60)
``max_retries``  retries after the first attempt (default 5)
``backoff_s``    first retry delay, doubled per attempt with jitter, at most 30 s
                 (default 1.0); a ``Retry-After`` header from the server wins

The API key is kept only in the session's headers: it never appears in logs, errors,
``repr()`` or :meth:`Generator.identity`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from llm4sbr_core.errors import ConfigError, GenerationError
from llm4sbr_core.llm.base import Generation, Generator, GeneratorSettings
from llm4sbr_core.llm.common import hit_token_limit, public_url

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "base_url": None,
    "api_key_env": "OPENAI_API_KEY",
    "concurrency": 8,
    "timeout_s": 60.0,
    "max_retries": 5,
    "backoff_s": 1.0,
}
RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
MAX_BACKOFF_S = 30.0
#: A Retry-After beyond this is treated as this (a server asking for an hour is broken).
MAX_RETRY_AFTER_S = 300.0
_CONNECTION_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _server_message(response: requests.Response) -> str:
    """The error message a server put in its response body (OpenAI, vLLM or plain text)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or body.get("message") or body.get("detail")
    if not message:
        message = response.text.strip() or response.reason or "no message"
    text = " ".join(str(message).split())
    return text if len(text) <= 500 else text[:497] + "..."


def _retry_after(response: requests.Response) -> float | None:
    """The delay a ``Retry-After`` header asks for (seconds or an HTTP date), or ``None``."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class OpenAIGenerator(Generator):
    """Answers prompts through an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, settings: GeneratorSettings):
        self.settings = settings
        opts = {**DEFAULTS, **(settings.options or {})}
        unknown = sorted(set(opts) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"llm.openai.{unknown[0]}",
                              f"unknown option; known options: {', '.join(DEFAULTS)}")
        base_url = opts["base_url"]
        if not isinstance(base_url, str) or not base_url.strip():
            raise ConfigError("llm.openai.base_url",
                              "the openai backend needs the server's URL, "
                              "e.g. http://localhost:8000/v1")
        if urlsplit(base_url.strip()).scheme not in ("http", "https"):
            raise ConfigError("llm.openai.base_url",
                              f"expected an http(s) URL, got {public_url(base_url)!r}")
        self.base_url = base_url.strip().rstrip("/")
        self._url = f"{self.base_url}/chat/completions"
        self._shown_url = public_url(self._url)  # what logs and errors may name
        self.api_key_env = str(opts["api_key_env"])
        self.concurrency = self._number(opts, "concurrency", int, minimum=1)
        self.timeout_s = self._number(opts, "timeout_s", float, minimum=0.0, strict=True)
        self.max_retries = self._number(opts, "max_retries", int, minimum=0)
        self.backoff_s = self._number(opts, "backoff_s", float, minimum=0.0)

        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(self.concurrency, 10),
                              max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        key = os.environ.get(self.api_key_env)
        if key:
            self._session.headers["Authorization"] = f"Bearer {key}"

    @staticmethod
    def _number(opts: dict[str, Any], name: str, kind: type, minimum: float,
                strict: bool = False) -> Any:
        value = opts[name]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and kind is int:
            ok = float(value).is_integer()
        if not ok or value < minimum or (strict and value == minimum):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            raise ConfigError(f"llm.openai.{name}",
                              f"expected {'an integer' if kind is int else 'a number'} "
                              f"{bound}, got {value!r}")
        return kind(value)

    def __repr__(self) -> str:
        return (f"OpenAIGenerator(model={self.settings.model!r}, "
                f"base_url={public_url(self.base_url)!r}, concurrency={self.concurrency})")

    def _payload(self, prompt: str) -> dict[str, Any]:
        decoding = self.settings.decoding
        # decoding.stop_at_newline is deliberately NOT sent as "stop": ["\n"]: a model that
        # starts its answer with a line break would then return an empty string. The
        # answer cleaning downstream keeps the first non-empty line instead, and
        # max_new_tokens bounds the cost of the extra lines.
        return {
            "model": self.settings.model,
            "messages": self.messages(prompt),
            "max_tokens": decoding.max_new_tokens,
            "temperature": 0,
            "n": 1,
        }

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        ceiling = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter"

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one request, retrying what can be retried; the decoded JSON response."""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = self._session.post(self._url, json=payload, timeout=self.timeout_s)
            except _CONNECTION_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise GenerationError(
                            f"POST {self._shown_url} returned HTTP {status} with a body that "
                            f"is not JSON: {response.text[:200]!r}") from None
                message = _server_message(response)
                if status not in RETRY_STATUSES and status < 500:
                    raise GenerationError(f"POST {self._shown_url} failed with HTTP {status}: "
                                          f"{message}")
                reason = f"HTTP {status}: {message}"
                retry_after = _retry_after(response)
                response.close()
            if attempt == attempts:
                raise GenerationError(f"POST {self._shown_url} failed after {attempts} "
                                      f"attempt(s); last error: {reason}")
            delay = self._delay(attempt, retry_after)
            log.warning("POST %s: attempt %d/%d failed (%s); retrying in %.2f s",
                        self._shown_url, attempt, attempts, reason, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _generate_one(self, prompt: str) -> Generation:
        body = self._post(self._payload(prompt))
        try:
            content = body["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise GenerationError(f"POST {self._shown_url}: the response has no "
                                  f"choices[0].message: {str(body)[:200]}") from None
        usage = body.get("usage") or {}
        if not isinstance(usage, dict):
            usage = {}
        text = content or ""
        tokens_out = usage.get("completion_tokens")
        return Generation(text=text, tokens_in=usage.get("prompt_tokens"),
                          tokens_out=tokens_out,
                          hit_token_limit=hit_token_limit(
                              body["choices"][0].get("finish_reason"), tokens_out, text,
                              self.settings.decoding.max_new_tokens))

    def generate(self, prompts: list[str]) -> list[Generation]:
        """One answer per prompt, in input order; at most ``concurrency`` requests at once.

        Raises :class:`GenerationError` on the first request that fails for good (the
        requests not yet started are cancelled).
        """
        if not prompts:
            return []
        workers = min(self.concurrency, len(prompts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
            futures: list[Future[Generation]] = [pool.submit(self._generate_one, p)
                                                 for p in prompts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def close(self) -> None:
        """Close the HTTP session and its connection pool."""
        self._session.close()
