"""Tests of the OpenAI-compatible and vLLM generation backends and the model identity helpers.

The OpenAI backend talks to a fake server on 127.0.0.1; vLLM is replaced by a fake module.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
import traceback
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from llm4sbr_core.errors import ConfigError, GenerationError, InvalidInputError
from llm4sbr_core.llm.base import DecodingSettings, Generation, GeneratorSettings
from llm4sbr_core.llm.common import REDACTED, public_url, redact
from llm4sbr_core.llm.identity import model_identity, model_slug, weights_digest
from llm4sbr_core.llm.openai_backend import OpenAIGenerator
from llm4sbr_core.llm.vllm_backend import VLLMGenerator

SECRET = "sk-test-DO-NOT-LEAK-4f9a1c"

# --------------------------------------------------------------------------- fake server


class Drip:
    """A script entry: a 200 reply sent one byte per ``interval`` seconds, in the headers
    (``where="headers"``) or in the body; never finished before the client gives up."""

    def __init__(self, where: str = "body", interval: float = 0.1):
        self.where, self.interval = where, interval


class FakeServer:
    """An OpenAI-compatible server: ``script`` holds (status, headers, body) replies to give
    first (or a callable of the request giving one, or a :class:`Drip`); after it, answers
    ``"answer:" + last user message`` with usage counts."""

    def __init__(self, script: list[tuple[int, dict[str, str], Any]] | None = None,
                 delay: float = 0.0):
        self.script = list(script or [])
        self.delay = delay
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.drips_ended = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "auth": self.headers.get("Authorization")})
                    reply = server.script.pop(0) if server.script else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                counted = True
                try:
                    if isinstance(reply, Drip):
                        with server.lock:
                            server.in_flight -= 1
                            counted = False
                        self.drip(reply)
                        return
                    if callable(reply):
                        reply = reply(server.requests[-1])
                    if server.delay:
                        server.stop.wait(server.delay)
                    if self.path != "/v1/chat/completions":
                        reply = (404, {}, {"error": {"message": f"no route {self.path}"}})
                    if reply is None:
                        prompt = body["messages"][-1]["content"]
                        reply = (200, {}, {
                            "choices": [{"message": {"role": "assistant",
                                                     "content": "answer:" + prompt},
                                         "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": len(prompt), "completion_tokens": 3},
                        })
                    status, headers, payload = reply
                    data = (payload if isinstance(payload, bytes)
                            else json.dumps(payload).encode())
                    # Out of flight before the reply leaves: a client that reads it and
                    # sends its next request at once must not be counted twice.
                    with server.lock:
                        server.in_flight -= 1
                        counted = False
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)
                finally:
                    if counted:
                        with server.lock:
                            server.in_flight -= 1

            def drip(self, drip: Drip) -> None:
                """Send a reply slowly enough that no single read ever times out; stop
                when the client hangs up or the server closes (at most 30 s)."""
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                if drip.where == "body":
                    self.wfile.write(head + b"Content-Length: 100000\r\n\r\n{")
                    data = b" " * 100000
                else:
                    self.wfile.write(head)
                    data = b"X-Slow: " + b"a" * 100000
                ends = time.monotonic() + 30
                try:
                    self.wfile.flush()
                    for byte in data:
                        if server.stop.wait(drip.interval) or time.monotonic() > ends:
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                finally:
                    with server.lock:
                        server.drips_ended += 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[FakeServer] = []

    def start(script=None, delay: float = 0.0) -> FakeServer:
        servers.append(FakeServer(script, delay))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def openai(url: str, decoding: DecodingSettings | None = None, **options: Any):
    options = {"base_url": url, "backoff_s": 0.01, "timeout_s": 5, **options}
    return OpenAIGenerator(GeneratorSettings(backend="openai", model="served-model",
                                             decoding=decoding or DecodingSettings(),
                                             options=options))


def err(status: int, message: str, headers: dict[str, str] | None = None):
    return (status, headers or {}, {"error": {"message": message}})


# --------------------------------------------------------------------------- openai


def test_openai_order_concurrency_and_request(serve, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = serve(delay=0.03)
    gen = openai(server.url, DecodingSettings(max_new_tokens=7, system_prompt="Be brief."),
                 concurrency=4)
    prompts = [f"prompt {i}" for i in range(50)]
    try:
        out = gen.generate(prompts)
    finally:
        gen.close()
    assert [g.text for g in out] == [f"answer:prompt {i}" for i in range(50)]
    assert out[12].tokens_in == len("prompt 12") and out[12].tokens_out == 3
    assert not any(g.hit_token_limit for g in out)
    assert 1 < server.max_in_flight <= 4
    body = server.requests[0]["body"]
    assert body["model"] == "served-model"
    assert body["max_tokens"] == 7 and body["temperature"] == 0 and body["n"] == 1
    assert "stop" not in body  # stop_at_newline is applied downstream, not by the server
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["role"] == "user"
    assert all(r["auth"] is None for r in server.requests)
    assert gen.generate([]) == []


def test_openai_missing_content_and_usage(serve):
    server = serve([(200, {}, {"choices": [{"message": {"content": None}}]})])
    gen = openai(server.url)
    (g,) = gen.generate(["x"])
    assert g == Generation(text="", tokens_in=None, tokens_out=None, hit_token_limit=False)


def test_openai_hit_token_limit(serve):
    def reply(content, finish=None, tokens=None):
        choice = {"message": {"content": content}}
        if finish:
            choice["finish_reason"] = finish
        return (200, {}, {"choices": [choice], "usage": {"completion_tokens": tokens}})

    server = serve([reply("The Long Na", "length", 24), reply("Name\nBecause", "length", 24),
                    reply("Name", "stop", 2), reply("The Long Na", None, 24),
                    reply("Name", None, 2)])
    out = openai(server.url, concurrency=1).generate(list("abcde"))
    assert [g.hit_token_limit for g in out] == [True, False, False, True, False]


def test_openai_server_errors(serve):
    server = serve([(502, {}, b"<html>Bad Gateway</html>"),
                    (200, {}, {"error": {"message": "quota exceeded"}}),
                    (200, {"Content-Type": "text/html"},
                     b"<!DOCTYPE html><html><head><title>Sign in - Corp SSO</title></head>"
                     b"<body><form><input name=csrf value=abc></form></body></html>"),
                    (302, {"Location": "https://u:pw@sso.example.com/login?next=/v1"}, b"")])
    gen = openai(server.url, max_retries=0, concurrency=1)
    with pytest.raises(GenerationError, match="HTTP 502: an HTML page .'Bad Gateway'"):
        gen.generate(["a"])
    with pytest.raises(GenerationError, match="HTTP 200 with an error: quota exceeded"):
        gen.generate(["b"])
    with pytest.raises(GenerationError, match="HTML page titled 'Sign in - Corp SSO'.*login") \
            as raised:
        openai(server.url, max_retries=3).generate(["c"])  # not retried: all would get it
    assert "csrf" not in str(raised.value)
    with pytest.raises(GenerationError, match=r"redirected \(HTTP 302\) to "
                       r"https://sso.example.com/login:") as raised:
        gen.generate(["d"])
    assert "pw" not in str(raised.value)
    assert len(server.requests) == 4  # the redirect is not followed, nothing retried


def reply(body: Any) -> tuple[int, dict[str, str], Any]:
    return (200, {}, body)


def choice(content: Any, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}, **extra}]}


def test_openai_wrong_types_are_flagged_not_fatal(serve, caplog):
    """Each answer's response shape is checked: a bad one is one flagged answer with
    ``error`` set, never a failed batch; odd token counts are recorded as unknown."""
    caplog.set_level(logging.WARNING)
    server = serve([
        reply(choice([{"type": "text", "text": "Heat "}, {"type": "text", "text": "(1995)"}])),
        reply(choice({"text": "Heat"})),
        reply({**choice("Casino"), "usage": {"prompt_tokens": "12", "completion_tokens": 3.0}}),
        reply({**choice("Babe"), "usage": {"prompt_tokens": "many", "completion_tokens": True}}),
        reply({**choice("Se7en", finish_reason=5), "usage": ["not", "a", "dict"]}),
        reply({"choices": []}),
        reply(["not", "an", "object"]),
        reply({"choices": [{"message": "Heat"}]}),
        reply(choice([{"type": "image_url", "image_url": {"url": "x"}}])),
        reply(choice(7)),
    ])
    out = openai(server.url, concurrency=1).generate([f"p{i}" for i in range(11)])
    assert len(server.requests) == 11  # nothing retried, nothing failed
    assert [g.text for g in out[:5]] == ["Heat (1995)", "", "Casino", "Babe", "Se7en"]
    assert out[0].error is None and out[2].error is None and out[4].error is None
    assert (out[2].tokens_in, out[2].tokens_out) == (12, 3)
    assert (out[3].tokens_in, out[3].tokens_out, out[3].error) == (None, None, None)
    assert (out[4].tokens_in, out[4].hit_token_limit) == (None, False)
    flagged = [i for i, g in enumerate(out) if g.error]
    assert flagged == [1, 5, 6, 7, 8, 9]
    assert all(out[i].text == "" for i in flagged)
    assert "content is dict" in out[1].error and "no choices[0]" in out[5].error
    assert "JSON list" in out[6].error and "message is str" in out[7].error
    assert "without text parts" in out[8].error and "content is int" in out[9].error
    assert out[10] == Generation("answer:p10", len("p10"), 3)
    assert "usage.prompt_tokens is 'many'" in caplog.text
    assert "usage is list" in caplog.text
    assert "unusable response" in caplog.text


def test_openai_broken_json_is_retried_then_flagged(serve, caplog):
    caplog.set_level(logging.WARNING)
    cut = (200, {}, b'{"choices": [{"message": {"content": "He')
    server = serve([cut, cut, cut])
    gen = openai(server.url, max_retries=1, concurrency=1)
    (first,) = gen.generate(["a"])  # two broken bodies: flagged, not raised
    assert first.text == "" and "not JSON" in first.error and "after 2 attempt" in first.error
    (second,) = gen.generate(["b"])  # one broken body, then a good one
    assert second.text == "answer:b" and second.error is None
    assert len(server.requests) == 4
    assert "attempt 1/2 failed (HTTP 200 with a body that is not JSON" in caplog.text

def test_openai_key_sent_and_never_shown(serve, monkeypatch, caplog):
    monkeypatch.setenv("MY_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    server = serve([err(503, "busy", {"Retry-After": "0"}),
                    (200, {}, {"choices": [{"message": {"content": "ok"}}]}),
                    err(401, "bad key")])
    gen = openai(server.url, api_key_env="MY_KEY")
    assert gen.generate(["a"])[0].text == "ok"
    with pytest.raises(GenerationError) as raised:
        gen.generate(["b"])
    assert [r["auth"] for r in server.requests] == [f"Bearer {SECRET}"] * 3
    assert "bad key" in str(raised.value) and "401" in str(raised.value)
    assert "attempt 1/6" in caplog.text
    for shown in (caplog.text, repr(gen), str(gen.identity()), str(raised.value),
                  repr(raised.value)):
        assert SECRET not in shown


def echo_auth(status: int, as_json: bool = True):
    """A reply that echoes the request's Authorization header, as some servers and
    proxies do in their 401 body."""
    def make(request):
        auth = request["auth"]
        if as_json:
            return (status, {}, {"error": {"message": f"Incorrect API key provided: "
                                           f"{auth.split()[-1]}", "received": auth}})
        return (status, {}, f"denied. Headers: Authorization: {auth}\n".encode())
    return make


def test_openai_echoed_key_never_reaches_logs_or_errors(serve, monkeypatch, caplog):
    monkeypatch.setenv("MY_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    server = serve([echo_auth(401), echo_auth(503, as_json=False), echo_auth(401, False),
                    echo_auth(502),
                    lambda r: (200, {}, {"choices": [], "debug": {"headers": r["auth"]}}),
                    lambda r: (200, {}, f'{{"cut": "{r["auth"]}'.encode())])
    gen = openai(server.url, api_key_env="MY_KEY", concurrency=1)
    errors = []
    for max_retries in (0, 1, 0):
        gen.max_retries = max_retries
        with pytest.raises(GenerationError) as raised:
            gen.generate(["p"])
        errors.append(raised.value)
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)
    assert len(server.requests) == 4  # 401 | 503, retried, 401 | 502
    assert "HTTP 401: Incorrect API key provided: [REDACTED]" in str(errors[0])
    assert "Authorization: [REDACTED]" in caplog.text  # the 503 retry warning
    for error in errors:
        shown = "".join(traceback.format_exception(error))
        assert SECRET not in shown and SECRET not in repr(error)
        assert SECRET[:12] not in shown  # not even a cut-off piece of it
    # unusable 200 responses that echo it: flagged, and the stored error is clean too
    gen.max_retries = 0
    flagged = gen.generate(["no choices", "cut"])
    assert all(g.error and SECRET[:12] not in g.error for g in flagged)
    assert len(server.requests) == 6
    assert SECRET not in caplog.text and SECRET[:12] not in caplog.text


@pytest.mark.parametrize("text", [
    "Bearer sk-abcdefgh123", "Authorization: Basic dXNlcjpwYXNzd29yZA==",
    "see https://alice:hunter22@proxy.example.com/v1", "url ?api_key=hunter22&x=1",
    '{"password": "hunter22"}', "x-api-key: hunter22",
])
def test_redact_hides_every_kind_of_credential(text):
    out = redact(text)
    assert "sk-abcdefgh123" not in out and "hunter22" not in out
    assert "dXNlcjpwYXNzd29yZA" not in out and REDACTED in out
    assert redact("max_tokens: 24 is too large (prompt token count 5)") == \
        "max_tokens: 24 is too large (prompt token count 5)"
    assert redact("key k3y-k3y-k3y and k3y-k3y-k3y", ["k3y-k3y-k3y"]).count(REDACTED) == 2


@pytest.mark.parametrize("where", ["body", "headers"])
def test_openai_deadline_cuts_off_a_dripping_server(serve, where, caplog):
    """One byte every 0.1 s never trips the 0.5 s read timeout; the deadline ends it."""
    caplog.set_level(logging.WARNING)
    server = serve([Drip(where), Drip(where)])
    gen = openai(server.url, timeout_s=0.5, deadline_s=0.8, max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match=r"after 2 attempt.*deadline_s=0.8 s"):
        gen.generate(["p"])
    took = time.monotonic() - t0
    assert 1.6 <= took < 4.0, took
    assert "attempt 1/2 failed (Timeout: no complete response within deadline_s=0.8" \
        in caplog.text
    # the connections were really closed: the server's drip loops end on their own
    ends = time.monotonic() + 5
    while server.drips_ended < 2 and time.monotonic() < ends:
        time.sleep(0.05)
    assert server.drips_ended == 2
    # the next request on the same session is not hurt by the cut-off ones
    assert gen.generate(["q"])[0].text == "answer:q"


def test_openai_deadline_defaults_to_twice_the_timeout():
    assert openai("http://h/v1", timeout_s=7).deadline_s == 14.0
    assert openai("http://h/v1", timeout_s=7, deadline_s=30).deadline_s == 30.0
    with pytest.raises(ConfigError) as raised:
        openai("http://h/v1", deadline_s=0)
    assert raised.value.key == "llm.openai.deadline_s"


def test_openai_identity_hides_credentials():
    settings = GeneratorSettings(backend="openai", model="served-model",
                                 options={"base_url": "https://user:pw@api.example.com:8443"
                                                      "/v1/?token=abc"})
    assert model_identity(settings) == {"backend": "openai", "model": "served-model",
                                        "base_url": "https://api.example.com:8443/v1"}
    gen = openai("https://api.example.com:8443/v1/")
    assert gen.identity() == model_identity(settings)
    assert public_url("http://h/v1/") == "http://h/v1"


@pytest.mark.parametrize("url, words", [
    ("https://user:pw@api.example.com/v1", "user name or password"),
    ("https://:sk-live-123@api.example.com/v1", "user name or password"),
    ("http://h:8000/v1?api_key=sk-live-123", "query string"),
    ("http://h:8000/v1#sk-live-123", "fragment"),
])
def test_openai_refuses_credentials_in_the_url(url, words):
    """Basic auth in the URL would replace the Bearer key and reach logs and metadata."""
    with pytest.raises(ConfigError, match=words) as raised:
        openai(url)
    assert raised.value.key == "llm.openai.base_url"
    assert "pw" not in str(raised.value) and "sk-live" not in str(raised.value)
    assert "api_key_env" in str(raised.value)


def test_openai_api_key_env_must_be_a_name(monkeypatch):
    with pytest.raises(ConfigError, match="NAME of an environment variable") as raised:
        openai("http://h/v1", api_key_env=SECRET)
    assert raised.value.key == "llm.openai.api_key_env" and SECRET not in str(raised.value)


@pytest.mark.parametrize("options, key", [
    ({}, "llm.openai.base_url"),
    ({"base_url": ""}, "llm.openai.base_url"),
    ({"base_url": "localhost:8000"}, "llm.openai.base_url"),
    ({"base_url": "http://h/v1", "concurrency": 0}, "llm.openai.concurrency"),
    ({"base_url": "http://h/v1", "timeout_s": 0}, "llm.openai.timeout_s"),
    ({"base_url": "http://h/v1", "max_retries": 1.5}, "llm.openai.max_retries"),
    ({"base_url": "http://h/v1", "base-url": "x"}, "llm.openai.base-url"),
])
def test_openai_config_errors(options, key):
    with pytest.raises(ConfigError) as raised:
        OpenAIGenerator(GeneratorSettings(backend="openai", model="m", options=options))
    assert raised.value.key == key


def test_openai_retries_5xx_then_succeeds(serve, caplog):
    caplog.set_level(logging.WARNING)
    server = serve([err(503, "overloaded", {"Retry-After": "0"})] * 2)
    t0 = time.monotonic()
    assert openai(server.url).generate(["p"])[0].text == "answer:p"
    assert time.monotonic() - t0 < 2  # Retry-After: 0 beat the backoff
    assert len(server.requests) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "attempt 2/6" in warnings[1].getMessage()
    assert "503" in warnings[0].getMessage()


def test_openai_retries_429(serve):
    server = serve([err(429, "slow down")])
    assert openai(server.url).generate(["p"])[0].text == "answer:p"
    assert len(server.requests) == 2


def test_openai_gives_up_after_max_retries(serve):
    server = serve([err(500, "boom")] * 10)
    with pytest.raises(GenerationError, match="after 3 attempt.*HTTP 500: boom"):
        openai(server.url, max_retries=2).generate(["p"])
    assert len(server.requests) == 3


def test_openai_does_not_retry_4xx(serve):
    server = serve([err(400, "max_tokens is too large")])
    with pytest.raises(GenerationError) as raised:
        openai(server.url).generate(["p"])
    assert len(server.requests) == 1
    message = str(raised.value)
    assert "max_tokens is too large" in message and "400" in message
    assert f"{server.url}/chat/completions" in message


def test_openai_error_stops_the_batch(serve):
    server = serve([err(400, "no")])
    with pytest.raises(GenerationError):
        openai(server.url, concurrency=1).generate([f"p{i}" for i in range(20)])
    assert len(server.requests) < 20


def test_openai_timeout(serve):
    server = serve(delay=2.0)
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match="after 2 attempt.*Timeout"):
        openai(server.url, timeout_s=0.2, max_retries=1).generate(["p"])
    assert time.monotonic() - t0 < 1.5
    assert len(server.requests) == 2


def test_openai_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GenerationError, match="after 2 attempt.*ConnectionError"):
        openai(f"http://127.0.0.1:{port}/v1", max_retries=1).generate(["p"])


def test_openai_backoff_is_capped():
    gen = openai("http://h/v1", backoff_s=1.0)
    assert all(0.5 <= gen._delay(1, None) <= 1.0 for _ in range(20))
    assert all(15.0 <= gen._delay(40, None) <= 30.0 for _ in range(20))
    assert gen._delay(3, 7.0) == 7.0


# --------------------------------------------------------------------------- vllm


def fake_vllm() -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.calls = {}

    class SamplingParams:
        def __init__(self, **kwargs: Any):
            self.kwargs = kwargs
            module.calls["sampling"] = kwargs

    class LLM:
        def __init__(self, **kwargs: Any):
            module.calls["engine"] = kwargs

        def chat(self, messages, sampling_params, use_tqdm=False):
            module.calls["chat"] = {"messages": messages, "sampling": sampling_params,
                                    "use_tqdm": use_tqdm}
            outs = []
            for conv in messages:
                text = "out:" + conv[-1]["content"]
                n = len(text)
                limit = sampling_params.kwargs["max_tokens"]
                outs.append(types.SimpleNamespace(
                    prompt_token_ids=list(range(len(conv[-1]["content"]))),
                    outputs=[types.SimpleNamespace(
                        text=text[:limit], token_ids=[1] * min(n, limit),
                        finish_reason="length" if n > limit else "stop")]))
            return outs

    module.LLM = LLM
    module.SamplingParams = SamplingParams
    return module


def vllm_settings(model: str = "Qwen/Qwen2.5-7B-Instruct", **options: Any):
    return GeneratorSettings(backend="vllm", model=model, dtype="bfloat16",
                             decoding=DecodingSettings(max_new_tokens=11,
                                                       system_prompt="You are terse."),
                             options=options)


def test_vllm_engine_and_generation(monkeypatch):
    fake = fake_vllm()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    gen = VLLMGenerator(vllm_settings(tensor_parallel_size=2, gpu_memory_utilization=0.8))
    assert fake.calls["engine"] == {"model": "Qwen/Qwen2.5-7B-Instruct",
                                    "enable_prefix_caching": True, "dtype": "bfloat16",
                                    "seed": 0, "tensor_parallel_size": 2,
                                    "gpu_memory_utilization": 0.8}
    out = gen.generate(["one", "three", "a long prompt"])
    assert [g.text for g in out] == ["out:one", "out:three", "out:a long "]
    assert [(g.tokens_in, g.tokens_out) for g in out] == [(3, 7), (5, 9), (13, 11)]
    assert [g.hit_token_limit for g in out] == [False, False, True]
    chat = fake.calls["chat"]
    assert chat["messages"][1] == [{"role": "system", "content": "You are terse."},
                                   {"role": "user", "content": "three"}]
    assert chat["use_tqdm"] is True
    assert chat["sampling"].kwargs == {"temperature": 0, "max_tokens": 11}
    assert gen.identity() == {"backend": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct",
                              "weights": None}
    assert gen.generate([]) == []
    gen.close()


def test_vllm_no_system_prompt_and_auto_dtype(monkeypatch, tmp_path):
    fake = fake_vllm()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    (tmp_path / "config.json").write_text("{}")
    settings = GeneratorSettings(backend="vllm", model=str(tmp_path), dtype="")
    gen = VLLMGenerator(settings)
    assert fake.calls["engine"]["dtype"] == "auto"
    gen.generate(["hi"])
    assert fake.calls["chat"]["messages"] == [[{"role": "user", "content": "hi"}]]
    assert gen.identity()["weights"] == weights_digest(tmp_path)


def test_vllm_unknown_option(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm())
    with pytest.raises(ConfigError) as raised:
        VLLMGenerator(vllm_settings(max_model_len=4096, swap_space=4))
    assert raised.value.key == "llm.vllm.swap_space"


def test_vllm_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match="pip install vllm") as raised:
        VLLMGenerator(vllm_settings())
    assert raised.value.key == "llm.backend"


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("model, slug", [
    ("embedded:smollm2-135m-instruct", "smollm2-135m-instruct"),
    ("/models/Qwen2.5-7B-Instruct/", "qwen2.5-7b-instruct"),
    ("/x/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct.q4_1"),
    ("Qwen/Qwen-7B-Chat", "qwen-7b-chat"),
    ("qwen-plus", "qwen-plus"),
    ("qwen2.5:7b", "qwen2.5-7b"),
    ("C:\\models\\My Model (v2)", "my-model-v2"),
    ("_.-Weird__Name!!-._", "weird__name"),
])
def test_model_slug(model, slug):
    assert model_slug(model) == slug


@pytest.mark.parametrize("model", ["", "/", "embedded:", "!!!", " -._ "])
def test_model_slug_empty(model):
    with pytest.raises(InvalidInputError, match=re.escape(f"the model {model!r}")) as e:
        model_slug(model)
    assert isinstance(e.value, ValueError)


def write_model(folder, weights: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "tokenizer.json").write_text('{"vocab": {}}')
    (folder / "README.md").write_text("hello")
    (folder / "model.safetensors").write_bytes(weights)


def test_weights_digest_folder(tmp_path):
    mib = 1 << 20
    weights = bytearray(b"\x01" * (3 * mib))
    model = tmp_path / "model"
    write_model(model, bytes(weights))
    first = weights_digest(model)
    assert first is not None and len(first) == 64
    assert weights_digest(str(model) + "/") == first  # stable

    (model / ".cache").mkdir()
    (model / ".cache" / "download.metadata").write_text(str(time.time()))
    assert weights_digest(model) == first  # hidden download metadata is ignored

    weights[-1] = 2
    (model / "model.safetensors").write_bytes(bytes(weights))
    changed = weights_digest(model)
    assert changed != first

    weights[-1] = 1
    weights[mib + 5] = 9  # the middle is not read: that is what keeps it fast
    (model / "model.safetensors").write_bytes(bytes(weights))
    assert weights_digest(model) == first

    (model / "config.json").write_text('{"hidden_size": 16}')
    assert weights_digest(model) != first


def test_weights_digest_file_and_hub_id(tmp_path):
    gguf = tmp_path / "m.Q4_1.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 100)
    first = weights_digest(gguf)
    assert first is not None and weights_digest(str(gguf)) == first
    gguf.write_bytes(b"GGUF" + b"\0" * 99 + b"\1")
    assert weights_digest(gguf) != first
    assert weights_digest("Qwen/Qwen-7B-Chat") is None


# --------------------------------------------------------------------------- module layers


def _sibling_imports(path) -> set[str]:
    """The ``llm/`` modules a module of ``llm/`` imports anywhere (top level, inside a
    function or under ``TYPE_CHECKING``)."""
    import ast

    siblings = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                name = module.split(".")[0]
                siblings |= {name} if name else {a.name for a in node.names}
            elif module.startswith("llm4sbr_core.llm."):
                siblings.add(module.split(".")[2])
            elif module == "llm4sbr_core.llm":
                siblings |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            siblings |= {a.name.split(".")[2] for a in node.names
                         if a.name.startswith("llm4sbr_core.llm.")}
    return siblings


def test_llm_modules_form_layers_without_a_circle():
    """No import circle inside ``llm/``, and no backend module imports another backend:
    what backends share lives in ``llm/common.py`` below them."""
    from pathlib import Path

    import llm4sbr_core.llm as package

    folder = Path(package.__file__).parent
    graph = {p.stem: _sibling_imports(p) - {p.stem} for p in folder.glob("*.py")
             if p.stem != "__init__"}
    assert "common" in graph and graph["common"] == set()
    backends = {name for name in graph if name.endswith("_backend")}
    assert backends == {"openai_backend", "transformers_backend", "vllm_backend"}
    for name in backends:
        assert not graph[name] & backends, f"{name} imports {graph[name] & backends}"

    def visit(name: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(name, ())):
            assert nxt not in path, f"import circle: {' -> '.join([*path, nxt])}"
            visit(nxt, [*path, nxt])

    for name in graph:
        visit(name, [name])
