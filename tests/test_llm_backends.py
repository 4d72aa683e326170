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
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from llm4sbr_core.errors import ConfigError, GenerationError, InvalidInputError
from llm4sbr_core.llm.base import DecodingSettings, Generation, GeneratorSettings
from llm4sbr_core.llm.common import public_url
from llm4sbr_core.llm.identity import model_slug, weights_digest
from llm4sbr_core.llm.openai_backend import OpenAIGenerator
from llm4sbr_core.llm.vllm_backend import VLLMGenerator

SECRET = "sk-test-DO-NOT-LEAK-4f9a1c"

# --------------------------------------------------------------------------- fake server


class FakeServer:
    """An OpenAI-compatible server: ``script`` holds (status, headers, body) replies to give
    first; after it, answers ``"answer:" + last user message`` with usage counts."""

    def __init__(self, script: list[tuple[int, dict[str, str], Any]] | None = None,
                 delay: float = 0.0):
        self.script = list(script or [])
        self.delay = delay
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
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


def test_openai_bad_responses(serve):
    server = serve([(200, {}, b"not json"), (200, {}, {"choices": []}),
                    (502, {}, b"<html>Bad Gateway</html>")])
    gen = openai(server.url, max_retries=0, concurrency=1)
    with pytest.raises(GenerationError, match="not JSON"):
        gen.generate(["a"])
    with pytest.raises(GenerationError, match="choices"):
        gen.generate(["b"])
    with pytest.raises(GenerationError, match="HTTP 502: <html>Bad Gateway"):
        gen.generate(["c"])


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


def test_openai_identity_hides_credentials():
    gen = openai("https://user:pw@api.example.com:8443/v1/?token=abc")
    assert gen.identity() == {"backend": "openai", "model": "served-model",
                              "base_url": "https://api.example.com:8443/v1"}
    assert "pw" not in repr(gen) and "abc" not in repr(gen)
    assert public_url("http://h/v1/") == "http://h/v1"


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
