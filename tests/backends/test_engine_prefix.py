"""Prefix sharing in the embedded engine: KV reuse, accounting, numerics, LRU bounds."""
from __future__ import annotations

import pytest

from parareason.backends.registry import load_backend
from tests.support.engine_util import PROMPTS, TEST_MODEL, greedy, request, run_all

# Logprobs computed over reused KV vs from scratch: same float32 math, but KV written by
# a batched decode step instead of one prefill GEMM, so rounding differs slightly.
LOGPROB_ATOL = 1e-4


# `engine`: the session-wide small-model engine (tests/conftest.py, float32).


@pytest.fixture(autouse=True)
def fresh_cache(engine):
    engine.prefix_cache.clear()
    yield
    assert not engine.has_work()


def chat(engine, text):
    return engine.tokenizer.chat_ids([{"role": "user", "content": text}])


def test_identical_siblings_prefill_once_and_need_no_forward(engine):
    ids = chat(engine, PROMPTS[0])
    before = engine.stats.prefill_tokens
    free_before = engine.stats.free_prefills
    for i in range(4):
        engine.submit(request(f"sib{i}", ids, greedy(4)))
    out = run_all(engine)
    assert engine.stats.prefill_tokens - before == len(ids)  # the prompt ran through the model once
    assert engine.stats.free_prefills - free_before == 3
    first = out["sib0"].first
    assert (first.prompt_tokens, first.cached_tokens, first.prefill_computed_tokens) == (len(ids), 0, len(ids))
    for i in (1, 2, 3):
        u = out[f"sib{i}"].first
        assert (u.prompt_tokens, u.cached_tokens, u.prefill_computed_tokens) == (len(ids), len(ids), 0)
        assert out[f"sib{i}"].tokens == out["sib0"].tokens
    # accounting appears once per sequence
    assert all(u.prompt_tokens == 0 for c in out.values() for u in c.updates[1:])


def test_child_branching_mid_generation_reuses_parent_kv_and_matches_recompute(engine):
    ids = chat(engine, PROMPTS[1])
    engine.submit(request("parent", ids, greedy(20, ignore_eos=True)))
    got = {}
    from tests.support.engine_util import collect
    for _ in range(8):
        collect(engine.step(), got)
    branch = ids + got["parent"].tokens[:5]
    engine.submit(request("child", branch, greedy(3, top_logprobs=20)))
    run_all(engine, got)
    child = got["child"]
    # parent's KV covers the branch point; only the last context token is recomputed
    assert child.first.cached_tokens == len(branch) - 1
    assert child.first.prefill_computed_tokens == 1
    assert child.tokens[0] == got["parent"].tokens[5]

    engine.prefix_cache.clear()
    engine.submit(request("scratch", branch, greedy(3, top_logprobs=20)))
    scratch = run_all(engine)["scratch"]
    assert scratch.first.cached_tokens == 0 and scratch.first.prefill_computed_tokens == len(branch)
    assert scratch.tokens == child.tokens
    for reused_pos, fresh_pos in zip(child.first.top_logprobs, scratch.first.top_logprobs):
        assert [t for t, _ in reused_pos] == [t for t, _ in fresh_pos]
        for (_, a), (_, b) in zip(reused_pos, fresh_pos):
            assert abs(a - b) <= LOGPROB_ATOL


def test_resume_after_finish_reuses_lru_kv(engine):
    ids = chat(engine, PROMPTS[2])
    engine.submit(request("first", ids, greedy(6, ignore_eos=True)))
    first = run_all(engine)["first"]
    resumed = ids + first.tokens + engine.tokenizer.encode(" Now explain why.")
    engine.submit(request("resumed", resumed, greedy(2)))
    u = run_all(engine)["resumed"].first
    # the finished sequence's KV covers its context and all but its last sampled token
    assert u.cached_tokens == len(ids) + len(first.tokens) - 1
    assert u.prefill_computed_tokens == len(resumed) - u.cached_tokens


def test_aborted_sequence_kv_is_reused(engine):
    ids = chat(engine, PROMPTS[3])
    engine.submit(request("a", ids, greedy(50, ignore_eos=True)))
    got = {}
    from tests.support.engine_util import collect
    for _ in range(4):
        collect(engine.step(), got)
    engine.abort("a")
    collect(engine.step(), got)
    assert got["a"].last.finish_reason == "abort" and len(got["a"].tokens) == 4
    again = ids + got["a"].tokens
    engine.submit(request("b", again, greedy(1)))
    u = run_all(engine)["b"].first
    # an aborted running sequence had all its tokens in KV, plus next-token logits
    assert (u.cached_tokens, u.prefill_computed_tokens) == (len(again), 0)


def test_lru_is_bounded_and_nothing_leaks():
    eng = load_backend("embedded", TEST_MODEL, prefix_cache_tokens=40, kv_initial_capacity=64)
    for i, p in enumerate(PROMPTS):
        eng.submit(request(f"s{i}", chat(eng, p), greedy(6, ignore_eos=True)))
    run_all(eng)
    assert eng.prefix_cache.cached_only_tokens() <= 40
    assert eng.pool.capacity > 64  # grew while four sequences ran
    eng.prefix_cache.clear()
    assert eng.pool.used == 0
