"""Helpers for the server tests: a real uvicorn server on a free loopback port,
driven by the official openai client, backed by the scripted test backend."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import httpx
import openai

from parareason.backends.scripted import ScriptContext, ScriptedBackend
from parareason.server import ServeDefaults, create_app
from parareason.server.background import free_port, serve_in_background as serve_in_thread  # noqa: F401 - free_port is re-exported to the server tests

MODEL = "toy-model"


def seeded_reply(ctx: ScriptContext) -> str:
    """Deterministic "model": the answer depends on the thread's seed (so votes vary),
    the text on the question (so replies of different requests differ)."""
    q = "2+2" if "2+2" in ctx.text else "3+3"
    right = "4" if q == "2+2" else "6"
    answer = right if (ctx.params.seed or 0) % 4 else "5"
    return f"Let me compute {q} step by step. It is {answer}. \\boxed{{{answer}}}"


class RecordingBackend(ScriptedBackend):
    """The scripted test double, recording aborts and the widest step (threads of how
    many requests shared one backend step)."""

    def __init__(self, *args: Any, max_positions: int | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._context_length = max_positions  # a context limit, like a real backend's (context_check.py)
        self.aborted: list[str] = []
        self.max_requests_per_step = 0
        self.max_seqs_per_step = 0

    @property
    def context_length(self) -> int | None:
        return self._context_length

    def abort(self, seq_id: str) -> None:
        self.aborted.append(seq_id)
        super().abort(seq_id)

    def step(self, timeout_s: float = 0.05):  # type: ignore[no-untyped-def]
        live = [s for s in self._seqs]
        self.max_seqs_per_step = max(self.max_seqs_per_step, len(live))
        self.max_requests_per_step = max(self.max_requests_per_step, len({s.split("|")[0] for s in live}))
        return super().step(timeout_s)


@contextmanager
def scripted_server(*, tokens_per_step: int = 4, latency_s: float = 0.0, script: Any = seeded_reply,
                    max_in_flight: int = 16, extra_policies: dict | None = None, api_key: str | None = None,
                    max_positions: int | None = None, **defaults: Any) -> Iterator[tuple[str, RecordingBackend, Any]]:
    backend = RecordingBackend(script, tokens_per_step=tokens_per_step, latency_s=latency_s,
                               max_positions=max_positions)
    defaults.setdefault("n", 3)
    defaults.setdefault("seed", 1)
    # Server-side per-policy parameter: requests that pick deepprune (suffix included) use the
    # answer judge, not the MiniLM embedding judge (seconds to load; tested in test_judge_*).
    defaults.setdefault("policy_args", {"deepprune.judge": "answer"})
    app = create_app(backend, ServeDefaults(model_id=MODEL, **defaults), max_in_flight=max_in_flight,
                     extra_policies=extra_policies, api_key=api_key)
    with serve_in_thread(app) as url:
        yield url, backend, app


def client(url: str, api_key: str = "unused", **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, **kw)


def async_client(url: str, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, **kw)


def wait_until(cond: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextmanager
def serve_process(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """`parareason serve --backend scripted --model toy ARGS` as a real process on a free
    port: yields (its URL, a list that holds its output once it has stopped). It stops by
    SIGINT, as a user's Ctrl-C does."""
    port = free_port()
    cmd = [sys.executable, "-m", "parareason.cli.main", "serve", "--backend", "scripted", "--model", "toy",
           "--port", str(port), "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else "server exited"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() - t0 < 60, "server did not come up"
            time.sleep(0.2)
        yield url, output
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (lifespan stops the engine loop)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        output.append(proc.stdout.read() if proc.stdout else "")
