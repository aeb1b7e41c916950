"""A prompt longer than the context is a 400 on every backend that knows its context
(issue 17 item 3), not only the embedded engine: SGLang (its `/server_info` context length,
here from the stand-in) and vLLM (`max_model_len` from `/v1/models`). Before, both reached
the backend, every sample failed and the client got a 500."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import openai
import pytest

from parareason.backends.sglang import load_sglang_backend
from parareason.backends.vllm.client import VLLMBackend
from parareason.backends.vllm.startup import ServerInfo
from parareason.server import ServeDefaults, create_app
from parareason.server.context_check import context_limit
from parareason.testing.sglang_standin import SGLangStandin, StandinModes
from tests.support.server_harness import MODEL, client, serve_in_thread
from tests.support.sglang_doubles import ByteTestTokenizer, ScriptTestBackend

TOK = ByteTestTokenizer()  # one token per byte: a prompt's length is exact
CONTEXT = 200
QUICK = dict(stall_timeout_s=5, request_timeout_s=20, backoff_base_s=0.02, backoff_max_s=0.1, abort_drain_s=1.0)


class OfflineVLLM(VLLMBackend):
    """The real vLLM client whose start-up finds one server with `max_model_len` CONTEXT
    (no server runs: a refused prompt must never reach one)."""

    async def _startup(self) -> list[ServerInfo]:
        return [ServerInfo(url=self.urls[0], model=MODEL, max_model_len=CONTEXT, prefix_caching=True)]


@contextmanager
def served(backend) -> Iterator[str]:
    app = create_app(backend, ServeDefaults(model_id=MODEL, n=2, seed=1, max_new_tokens=16))
    with serve_in_thread(app) as url:
        yield url


def refused(url: str) -> dict:
    c = client(url)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * (CONTEXT + 50)}])
    return e.value.body


def check_refusal(err: dict) -> None:
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    tokens = int(err["message"].split()[3])  # "the prompt is N tokens; this model's context is M tokens"
    assert tokens > CONTEXT + 50  # the content, and the protocol's messages around it
    assert f"this model's context is {CONTEXT} tokens" in err["message"]


def test_sglang_backend_refuses_an_over_long_prompt_with_a_400():
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(context_length=CONTEXT)) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK) as backend:
        probes = len(srv.generate_requests)  # the start-up checks' own
        with served(backend) as url:
            check_refusal(refused(url))
            assert len(srv.generate_requests) == probes  # refused before anything was scheduled
            ok = client(url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}])
            assert ok.choices[0].message.content and len(srv.generate_requests) > probes
        assert backend.context_length == CONTEXT


def test_vllm_backend_refuses_an_over_long_prompt_with_a_400():
    backend = OfflineVLLM(["http://127.0.0.1:9"], TOK)  # port 9 (discard): never contacted
    try:
        with served(backend) as url:
            check_refusal(refused(url))
        assert backend.context_length == CONTEXT
    finally:
        backend.close()


def test_a_backend_that_states_no_context_is_not_checked():
    backend = OfflineVLLM(["http://127.0.0.1:9"], TOK)
    try:
        backend.max_model_len = 0  # /v1/models said nothing
        assert backend.context_length is None and context_limit(backend) is None
    finally:
        backend.close()
