"""Live test against a real SGLang server; runs only when PARAREASON_SGLANG_URL is set.

    PARAREASON_SGLANG_URL=http://gpu-host:30000 PARAREASON_SGLANG_MODEL=qwen2.5-0.5b-coder \\
        pytest -q tests/backends/test_sglang_live.py

Besides prefix sharing and abort, it checks issue 18's items 1-5 on the real server:
the start-up facts (logprob scaling, seeds, context length), the context cap, many
concurrent streams with a short stall timeout (queued requests must not fail), and
aborts before and after the first chunk.

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
    time.sleep(backend.config.abort_drain_s + 0.5)
    assert backend._streams.unconfirmed_aborts == 0  # the server answered with its abort chunk


def test_live_start_up_facts(backend):
    """Items 1 and 2: the probe decided, and seeded reruns repeat only where the server says so."""
    from parareason.backends.base import GenerationRequest, SamplingParams

    facts = backend.facts
    assert facts["logprobs"] in ("temperature-scaled", "original")
    assert isinstance(facts["context_length"], int) and facts["context_length"] > 0
    if not facts["seeded_reruns_repeat"]:
        pytest.skip("server runs without --enable-deterministic-inference: seeds are not honoured")
    tok = backend.tokenizer
    ids = tuple(tok.chat_ids([{"role": "user", "content": "Write a short poem about rain."}]))
    p = SamplingParams(temperature=0.9, seed=1234, max_new_tokens=32)
    for i in range(2):
        backend.submit(GenerationRequest(f"live-seed-{i}", ids, p))
    seen = _run(backend)
    runs = [[t for u in seen[f"live-seed-{i}"] for t in u.token_ids] for i in range(2)]
    assert runs[0] == runs[1]


def test_live_context_cap_and_full_context(backend):
    """Item 3: max_new_tokens is capped to what the scheduler allows (finish length), an input
    of max_req_input_len tokens is an error. SGLang 0.5.23 (`sglang/srt/`): the scheduler aborts
    input >= max_req_input_len = max_req_len - 5 (managers/scheduler.py:3246-3254,
    managers/utils.py:272-285, managers/tp_worker.py:568-572) and caps max_new_tokens to
    max_req_len - input - 1 (managers/scheduler.py:2710-2717), max_req_len = min(context - 1, KV - 1)."""
    import httpx

    from parareason.backends.base import GenerationRequest, SamplingParams

    ctx, limit = backend.facts["context_length"], backend.facts["max_req_input_len"]
    limit = limit if limit is not None else ctx - 6
    max_req_len = min(limit + 5, ctx - 1)
    filler = backend.tokenizer.encode(" one two three four five six seven eight nine ten")
    ids = tuple((filler * (limit // len(filler) + 1))[: limit - 1])  # the longest input it runs
    backend.submit(GenerationRequest("live-cap", ids, SamplingParams(temperature=0.0, max_new_tokens=100,
                                                                     ignore_eos=True)))
    full = ids + tuple(filler[:1])  # limit tokens: the scheduler would abort it
    backend.submit(GenerationRequest("live-full", full, SamplingParams(max_new_tokens=1)))
    seen = _run(backend)
    cap = seen["live-cap"]
    assert cap[-1].finish_reason == "length", cap[-1].error
    assert sum(len(u.token_ids) for u in cap) == max_req_len - len(ids) - 1  # 5 unless the KV pool is smaller
    assert seen["live-full"][-1].finish_reason == "error" and "context full" in seen["live-full"][-1].error
    # The server itself: input + max_new_tokens fit the context, the scheduler still refuses the input.
    body = {"input_ids": list(full), "sampling_params": {"max_new_tokens": 1}}
    r = httpx.post(f"{backend.urls[0]}/generate", json=body, timeout=120)
    assert r.status_code == 400 and "exceeds the maximum allowed length" in r.text, r.text


def test_live_many_streams_with_a_short_stall_timeout():
    """Item 4: requests queued (or retracted) on a busy server wait instead of failing."""
    from parareason.backends.base import GenerationRequest, SamplingParams
    from parareason.backends.embedded import load_tokenizer
    from parareason.backends.sglang import load_sglang_backend
    from parareason.models import DEFAULT_MODEL

    tok = load_tokenizer(os.environ.get("PARAREASON_SGLANG_MODEL", DEFAULT_MODEL))
    n = int(os.environ.get("PARAREASON_SGLANG_LOAD", "256"))
    with load_sglang_backend(URL, tok, stall_timeout_s=1.0, first_token_timeout_s=600, request_timeout_s=900,
                             probe_logprobs=False) as b:
        for i in range(n):
            ids = tuple(tok.chat_ids([{"role": "user", "content": f"Tell story number {i} in detail."}]))
            b.submit(GenerationRequest(f"live-load-{i:04d}", ids, SamplingParams(max_new_tokens=512, seed=i)))
        seen = _run(b, limit_s=900)
    errors = [u.error for ups in seen.values() for u in ups if u.finish_reason == "error"]
    assert not errors and len(seen) == n, errors[:3]


def test_live_abort_before_the_first_chunk(backend):
    """Item 5: an abort right after submit closes the stream (a posted one could be lost)."""
    from parareason.backends.base import GenerationRequest, SamplingParams

    ids = tuple(backend.tokenizer.chat_ids([{"role": "user", "content": "Count to 5000."}]))
    backend.submit(GenerationRequest("live-early", ids, SamplingParams(max_new_tokens=4000, ignore_eos=True)))
    backend.abort("live-early")
    ups = _run(backend)["live-early"]
    assert [(u.finish_reason, u.token_ids) for u in ups] == [("abort", [])]
