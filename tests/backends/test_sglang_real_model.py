"""A real model behind the SGLang stand-in: smollm2-135m (the small shipped model) on the
embedded engine, served over HTTP, read by SGLangBackend with the model's real HF tokenizer.

Checks what the scripted double cannot: the start-up tokenizer check with a real
vocabulary (multi-byte, special tokens), and that greedy tokens and logprobs cross the
wire unchanged.
"""
from __future__ import annotations

import math


from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.sglang import load_sglang_backend
from parareason.testing.sglang_standin import SGLangStandin
from tests.support.sglang_doubles import run_to_end


# `engine`: the session-wide small-model engine (tests/conftest.py, float32).


def test_greedy_over_http_equals_the_engine_directly(engine):
    tok = engine.tokenizer
    prompt = tuple(tok.chat_ids([{"role": "user", "content": "What is 3+4? Answer: "}]))
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12, top_logprobs=2)
    engine.submit(GenerationRequest("direct", prompt, greedy))
    direct = run_to_end(engine, limit_s=120)["direct"]
    ref_tokens = [t for u in direct for t in u.token_ids]
    ref_lps = [x for u in direct for x in u.logprobs]

    with SGLangStandin(engine) as srv, load_sglang_backend(srv.url, tok, request_timeout_s=120) as client:
        client.submit(GenerationRequest("http", prompt, greedy, affinity_key="r"))
        via = run_to_end(client, limit_s=120)["http"]
        assert srv.generate_requests[-1]["input_ids"] == list(prompt)
    tokens = [t for u in via for t in u.token_ids]
    lps = [x for u in via for x in u.logprobs]
    assert tokens == ref_tokens and via[-1].finish_reason == direct[-1].finish_reason
    # JSON carries floats exactly; the only difference allowed is the engine's prefix-cache
    # reuse on the second run (cached KV instead of a fresh prefill).
    assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(lps, ref_lps))
    tops = [p for u in via for p in (u.top_logprobs or [])]
    assert len(tops) == len(tokens) and all(len(p) == 2 for p in tops)
    first = next(u for u in via if u.prompt_tokens)
    assert first.prompt_tokens == len(prompt) and first.cached_tokens + first.prefill_computed_tokens == len(prompt)
