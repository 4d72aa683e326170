"""Generation backend for any OpenAI-compatible chat-completions server.

Works with vLLM, SGLang, the llama.cpp server, Ollama and hosted endpoints: it POSTs to
``{base_url}/chat/completions`` with plain ``requests`` (no ``openai`` package). Requests
run concurrently (at most ``concurrency`` in flight) and are retried with exponential
backoff on connection errors, timeouts, a missed deadline, a body that is not JSON and
HTTP 408/409/429/5xx.

Options (the backend's ``settings.options`` block):

``base_url``     required, e.g. ``http://localhost:8000/v1``; no ``user:password@``, no
                 query string (the key comes from the environment, see ``api_key_env``)
``api_key_env``  name of the environment variable holding the API key (default
                 ``OPENAI_API_KEY``); unset means no ``Authorization`` header
``concurrency``  requests in flight at most (default 8)
``timeout_s``    connect timeout, and the longest silence while reading, of one request,
                 seconds (default 60)
``deadline_s``   wall-clock limit of one attempt, from connecting to the last byte of the
                 response, seconds (default ``null`` = 2 × ``timeout_s``): a server that
                 drips its reply slowly enough to never hit ``timeout_s`` is cut off here
                 and the attempt counts as failed (and is retried)
``max_retries``  retries after the first attempt (default 5)
``backoff_s``    first retry delay, doubled per attempt with jitter, at most 30 s
                 (default 1.0); a ``Retry-After`` header from the server wins

The API key is kept only in the session's headers: it never appears in logs, errors,
``repr()`` or :meth:`Generator.identity`. Everything a server sends back or a URL holds
passes :func:`.common.redact` before it enters a message, so a server that echoes the
``Authorization`` header in its error body does not put the key into a job log.

Each answer's response is checked (a JSON object with ``choices[0].message.content`` a
string or a list of text parts; token counts non-negative integers). A response that
carries no usable answer does not fail the batch: its :class:`Generation` has empty text
and ``error`` set, is stored, flagged like an empty answer and requested again by a later
run. An HTML page instead of JSON (a login page, a proxy) or a JSON error object fails at
once: every other request would get the same.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from llm4sbr_core.errors import ConfigError, GenerationError
from llm4sbr_core.llm.base import Generation, Generator, GeneratorSettings
from llm4sbr_core.llm.common import (
    base_url_problem,
    hit_token_limit,
    is_env_name,
    public_url,
    redact,
)

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "base_url": None,
    "api_key_env": "OPENAI_API_KEY",
    "concurrency": 8,
    "timeout_s": 60.0,
    "deadline_s": None,
    "max_retries": 5,
    "backoff_s": 1.0,
}
RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
MAX_BACKOFF_S = 30.0
#: A Retry-After beyond this is treated as this (a server asking for an hour is broken).
MAX_RETRY_AFTER_S = 300.0
#: ``deadline_s`` when not configured: this many times ``timeout_s``.
DEADLINE_FACTOR = 2.0
#: Server text in a message is cut to this many characters (after redaction).
MAX_SHOWN = 300
#: Invalid answers logged one by one; after that, only counted.
MAX_LOGGED_INVALID = 5
_CONNECTION_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


# --------------------------------------------------------------------------- deadline

_current = threading.local()  # the _Deadline of the attempt this thread is making
_owners = threading.Lock()    # guards which _Deadline owns which connection


def _shut(sock: socket.socket | None) -> None:
    """End every blocked read and write on ``sock`` at once (close() would not wake a
    thread blocked in recv)."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class _Deadline:
    """The wall-clock limit of one attempt. When it passes, the socket of the attempt's
    connection is shut down, which ends the request wherever it is (sending, waiting for
    the status line, reading headers or body) with a connection error."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._finished = False
        self._conn: HTTPConnection | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with _owners:
            self._finished = True
            self._conn = None
        _current.deadline = None

    def attach(self, conn: HTTPConnection) -> None:
        """``conn`` now carries this attempt (called by the connection itself)."""
        with _owners:
            self._conn = conn
            conn._llm4sbr_deadline = self  # type: ignore[attr-defined]
            if self.expired:
                _shut(conn.sock)

    def _expire(self) -> None:
        with _owners:
            if self._finished:
                return
            self.expired = True
            conn = self._conn
            # The connection may have gone back to the pool and on to another attempt.
            if conn is not None and getattr(conn, "_llm4sbr_deadline", None) is self:
                _shut(conn.sock)


class _DeadlineConnectionMixin:
    """A urllib3 connection that tells the running attempt's :class:`_Deadline` it
    carries the request, and shuts itself down when it connects after the deadline."""

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        with _owners:
            deadline = getattr(self, "_llm4sbr_deadline", None)
            if deadline is not None and deadline.expired and not deadline._finished:
                _shut(self.sock)


class _HTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections that honour :class:`_Deadline` (directly and
    through an HTTP proxy; a SOCKS proxy keeps its own connections, bounded by the
    per-read timeout only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


# --------------------------------------------------------------------------- responses


def _server_message(response: requests.Response) -> str:
    """The error message a server put in its response body (OpenAI, vLLM, plain text or
    an HTML page's title), on one line and not yet redacted or shortened."""
    if _is_html(response):
        return _html_summary(response.text)
    try:
        body = response.json()
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        message = _error_message(body)
    if not message:
        message = response.text.strip() or response.reason or "no message"
    return " ".join(str(message).split())


def _error_message(body: dict[str, Any]) -> Any:
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return message or body.get("message") or body.get("detail")


def _is_html(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "").lower()
    head = response.text.lstrip()[:100].lower()
    return "html" in kind or head.startswith(("<!doctype html", "<html"))


def _html_summary(page: str) -> str:
    title = _TITLE.search(page)
    text = _TAG.sub(" ", title.group(1) if title else page)
    text = " ".join(text.split())[:200]
    if not text:
        return "an HTML page"
    return f"an HTML page titled {text!r}" if title else f"an HTML page ({text!r})"


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


def _count(value: Any) -> tuple[int | None, bool]:
    """A token count as an int (``None`` when absent) and whether it was usable."""
    if value is None:
        return None, True
    if isinstance(value, bool):
        return None, False
    if isinstance(value, int):
        return (value, True) if value >= 0 else (None, False)
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value), True
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()), True
    return None, False


def _content_text(content: Any) -> tuple[str, str | None]:
    """The answer text of ``message.content`` and, when it has none, why."""
    if content is None:
        return "", None  # the model said nothing: an empty answer, not a broken one
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        texts = [part if isinstance(part, str) else part.get("text")
                 for part in content
                 if isinstance(part, str) or (isinstance(part, dict)
                                              and part.get("type", "text") == "text")]
        texts = [t for t in texts if isinstance(t, str)]
        if texts or not content:
            return "".join(texts), None
        return "", "choices[0].message.content is a list without text parts"
    return "", f"choices[0].message.content is {type(content).__name__}, not a string"


# --------------------------------------------------------------------------- generator


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
        problem = base_url_problem(base_url)
        if problem:
            raise ConfigError("llm.openai.base_url", problem)
        self.base_url = base_url.strip().rstrip("/")
        self._url = f"{self.base_url}/chat/completions"
        self._shown_url = public_url(self._url)  # what logs and errors may name
        if not is_env_name(opts["api_key_env"]):
            raise ConfigError("llm.openai.api_key_env",
                              "expected the NAME of an environment variable that holds the "
                              "key (e.g. OPENAI_API_KEY), not the key itself (value not "
                              "shown)")
        self.api_key_env = str(opts["api_key_env"])
        self.concurrency = self._number(opts, "concurrency", int, minimum=1)
        self.timeout_s = self._number(opts, "timeout_s", float, minimum=0.0, strict=True)
        if opts["deadline_s"] is None:
            self.deadline_s = DEADLINE_FACTOR * self.timeout_s
        else:
            self.deadline_s = self._number(opts, "deadline_s", float, minimum=0.0,
                                           strict=True)
        self.max_retries = self._number(opts, "max_retries", int, minimum=0)
        self.backoff_s = self._number(opts, "backoff_s", float, minimum=0.0)

        self._session = requests.Session()
        adapter = _DeadlineAdapter(pool_connections=1,
                                   pool_maxsize=max(self.concurrency, 10), max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        key = os.environ.get(self.api_key_env)
        if key:
            self._session.headers["Authorization"] = f"Bearer {key}"
        self._invalid = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()

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

    # ------------------------------------------------------------------ messages

    def _redact(self, text: str, limit: int | None = None) -> str:
        """``text`` without the API key or any other credential (:func:`.common.redact`),
        then cut to ``limit`` characters. Every message of this class passes here."""
        auth = self._session.headers.get("Authorization") or ""
        text = redact(str(text), [auth, auth.partition(" ")[2]])
        if limit is not None and len(text) > limit:
            text = text[:limit - 3] + "..."
        return text

    def _fail(self, message: str) -> GenerationError:
        return GenerationError(self._redact(f"POST {self._shown_url}{message}"))

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        log.warning(self._redact(message % args))

    def _flag(self, reason: str) -> Generation:
        """An answer the server's response did not carry: kept, flagged, retried later."""
        reason = self._redact(reason, MAX_SHOWN)
        with self._lock:
            self._invalid += 1
            n = self._invalid
        if n <= MAX_LOGGED_INVALID:
            log.warning("POST %s: unusable response (%s); the answer is stored empty with "
                        "this error and asked again by the next run%s", self._shown_url,
                        reason, "; further ones are only counted"
                        if n == MAX_LOGGED_INVALID else "")
        return Generation(text="", error=reason)

    # ------------------------------------------------------------------ requests

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

    def _attempt(self, payload: dict[str, Any]) -> tuple[requests.Response | None, str]:
        """One POST within ``deadline_s``: the response, or ``None`` and why not."""
        with _Deadline(self.deadline_s) as deadline:
            try:
                response = self._session.post(self._url, json=payload,
                                              timeout=self.timeout_s, allow_redirects=False)
            except _CONNECTION_ERRORS as exc:
                if deadline.expired:
                    return None, (f"Timeout: no complete response within deadline_s="
                                  f"{self.deadline_s:g} s")
                return None, f"{type(exc).__name__}: {exc}"
        if deadline.expired:  # cut off while the body arrived: never trust a partial body
            response.close()
            return None, f"Timeout: no complete response within deadline_s={self.deadline_s:g} s"
        return response, ""

    def _post(self, payload: dict[str, Any]) -> Any:
        """POST one request, retrying what can be retried: the decoded JSON body, or a
        flagged :class:`Generation` when a 2xx body stayed unreadable."""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            unreadable = False
            response, reason = self._attempt(payload)
            if response is not None:
                status = response.status_code
                if 200 <= status < 300:
                    if _is_html(response):
                        raise self._fail(
                            f" returned {_html_summary(response.text)} with HTTP {status} "
                            "instead of JSON: a login page or a proxy in front of the "
                            "server? Check llm.openai.base_url")
                    try:
                        body = response.json()
                    except ValueError:
                        unreadable = True
                        reason = (f"HTTP {status} with a body that is not JSON (cut off?): "
                                  f"{self._redact(response.text, 120)!r}")
                    else:
                        if (isinstance(body, dict) and "choices" not in body
                                and _error_message(body)):
                            raise self._fail(f" answered HTTP {status} with an error: "
                                             f"{self._redact(_error_message(body), MAX_SHOWN)}")
                        return body
                elif 300 <= status < 400:
                    where = public_url(response.headers.get("Location", "") or "?")
                    raise self._fail(f" was redirected (HTTP {status}) to {where}: set "
                                     "llm.openai.base_url to the final address (a login "
                                     "page asks for credentials this backend does not send)")
                else:
                    message = self._redact(_server_message(response), MAX_SHOWN)
                    if status not in RETRY_STATUSES and status < 500:
                        raise self._fail(f" failed with HTTP {status}: {message}")
                    reason = f"HTTP {status}: {message}"
                    retry_after = _retry_after(response)
                response.close()
            reason = self._redact(reason, MAX_SHOWN)
            if attempt == attempts:
                if unreadable:
                    return self._flag(f"after {attempts} attempt(s): {reason}")
                raise self._fail(f" failed after {attempts} attempt(s); last error: {reason}")
            delay = self._delay(attempt, retry_after)
            log.warning("POST %s: attempt %d/%d failed (%s); retrying in %.2f s",
                        self._shown_url, attempt, attempts, reason, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _generate_one(self, prompt: str) -> Generation:
        body = self._post(self._payload(prompt))
        if isinstance(body, Generation):
            return body
        return self._answer(body)

    def _answer(self, body: Any) -> Generation:
        """One answer out of a decoded response, its shape checked field by field."""
        if not isinstance(body, dict):
            return self._flag(f"the response is a JSON {type(body).__name__}, not an object")
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return self._flag(f"the response has no choices[0]: {self._redact(str(body), 200)}")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            return self._flag("choices[0].message is "
                              f"{type(message).__name__}, not an object")
        text, problem = _content_text(message.get("content"))
        if problem:
            return self._flag(problem)
        usage = body.get("usage")
        if usage is not None and not isinstance(usage, dict):
            self._warn_once("usage", "POST %s: usage is %s, not an object; token counts "
                            "are recorded as unknown", self._shown_url, type(usage).__name__)
        usage = usage if isinstance(usage, dict) else {}
        counts = {}
        for name in ("prompt_tokens", "completion_tokens"):
            counts[name], ok = _count(usage.get(name))
            if not ok:
                self._warn_once(name, "POST %s: usage.%s is %r, not a count; recorded as "
                                "unknown", self._shown_url, name, usage.get(name))
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else None
        return Generation(text=text, tokens_in=counts["prompt_tokens"],
                          tokens_out=counts["completion_tokens"],
                          hit_token_limit=hit_token_limit(
                              finish, counts["completion_tokens"], text,
                              self.settings.decoding.max_new_tokens))

    def generate(self, prompts: list[str]) -> list[Generation]:
        """One answer per prompt, in input order; at most ``concurrency`` requests at once.

        Raises :class:`GenerationError` on the first request that fails for good (the
        requests not yet started are cancelled). A response without a usable answer is
        not a failure: that prompt's :class:`Generation` has ``error`` set.
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

