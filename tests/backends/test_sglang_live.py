"""Live test against a real SGLang server; runs only when PARAREASON_SGLANG_URL is set.

    PARAREASON_SGLANG_URL=http://gpu-host:30000 PARAREASON_SGLANG_MODEL=qwen2.5-0.5b-coder \\
        pytest -q tests/test_sglang_live.py

The server must serve the model named by PARAREASON_SGLANG_MODEL (a parareason alias or
a local model dir; default qwen2.5-0.5b-coder), whose tokenizer is loaded locally.
"""
from __future__ import annotations

import os
import time

import pytest

URL = os.environ.get("PARAREASON_SGLANG_URL")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="PARAREASON_SGLANG_URL is not set (no live SGLang server)"),
]


@pytest.fixture(scope="module")
def backend():
    from parareason.models import DEFAULT_MODEL
    from parareason.backends.sglang import load_sglang_backend
    from parareason.backends.embedded import load_tokenizer

    tok = load_tokenizer(os.environ.get("PARAREASON_SGLANG_MODEL", DEFAULT_MODEL))
    b = load_sglang_backend(URL, tok, wait_ready_s=float(os.environ.get("PARAREASON_SGLANG_WAIT_S", "0")),
                            stall_timeout_s=60, request_timeout_s=300)
    yield b
    b.close()


def _run(b, limit_s=300.0):
    seen = {}
    deadline = time.monotonic() + limit_s
    while b.has_work():
        assert time.monotonic() < deadline
        for u in b.step(0.2):
            seen.setdefault(u.seq_id, []).append(u)
    return seen


def test_live_siblings_share_the_prefix_and_greedy_is_deterministic(backend):
    from parareason.backends.base import GenerationRequest, SamplingParams

    tok = backend.tokenizer
    prompt = tuple(tok.chat_ids([{"role": "user", "content": "What is 17 * 23? Answer briefly."}]))
    greedy = SamplingParams(temperature=0.0, max_new_tokens=48, top_logprobs=2)
    backend.submit(GenerationRequest("live-warm", prompt, greedy, affinity_key="live"))
    warm = _run(backend)["live-warm"]
    for i in range(3):
        backend.submit(GenerationRequest(f"live-sib-{i:02d}", prompt, greedy, affinity_key="live"))
    seen = _run(backend)
    ref = [t for u in warm for t in u.token_ids]
    assert warm[-1].finish_reason in ("eos", "length") and ref
    for i in range(3):
        ups = seen[f"live-sib-{i:02d}"]
        toks = [t for u in ups for t in u.token_ids]
        assert toks == ref  # greedy: identical continuation
        assert sum(len(u.logprobs) for u in ups) == len(toks)
        first = next(u for u in ups if u.prompt_tokens)
        assert first.prompt_tokens == len(prompt)
        assert first.cached_tokens >= len(prompt) - 1 - 16  # radix cache hit (page size slack)


def test_live_abort(backend):
    from parareason.backends.base import GenerationRequest, SamplingParams

    tok = backend.tokenizer
    ids = tuple(tok.chat_ids([{"role": "user", "content": "Count from 1 to 1000, one number per line."}]))
    backend.submit(GenerationRequest("live-abort", ids, SamplingParams(temperature=0.7, max_new_tokens=2000, ignore_eos=True)))
    got = 0
    deadline = time.monotonic() + 120
    while got < 8:
        assert time.monotonic() < deadline
        got += sum(len(u.token_ids) for u in backend.step(0.2))
    backend.abort("live-abort")
    ups = _run(backend)["live-abort"]
    assert [u.finish_reason for u in ups] == ["abort"]
