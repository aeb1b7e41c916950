"""Embedded engine control flow: abort, stop conditions, seeds, continuous batching, errors."""
from __future__ import annotations

import math

import pytest
import torch

from parareason.backends.base import SamplingParams
from parareason.backends.registry import load_backend
from tests.support.engine_util import PROMPTS, TEST_MODEL, collect, greedy, request, run_all


# `engine`: the session-wide small-model engine (tests/conftest.py, float32).


@pytest.fixture(autouse=True)
def fresh(engine):
    engine.prefix_cache.clear()
    engine.options.max_batch_size = 64
    yield
    assert not engine.has_work()


def chat(engine, text):
    return engine.tokenizer.chat_ids([{"role": "user", "content": text}])


@pytest.fixture(scope="module")
def reference(engine):
    """Greedy output of PROMPTS[1] run alone, ignoring EOS (12 tokens: enough text to cut)."""
    engine.submit(request("ref", chat(engine, PROMPTS[1]), greedy(12, ignore_eos=True)))
    return run_all(engine)["ref"].tokens


def test_abort_leaves_the_batch_at_once(engine):
    for i in range(3):
        engine.submit(request(f"s{i}", chat(engine, PROMPTS[i]), greedy(6, ignore_eos=True)))
    got = {}
    for _ in range(3):
        collect(engine.step(), got)
    engine.abort("s1")
    assert "s1" not in engine.running
    step = engine.step()
    s1 = [u for u in step if u.seq_id == "s1"]
    assert len(s1) == 1 and s1[0].finished and s1[0].finish_reason == "abort" and not s1[0].token_ids
    collect(step, got)
    run_all(engine, got)
    assert len(got["s1"].tokens) == 3 and len(got["s1"].updates) == 4
    assert len(got["s0"].tokens) == len(got["s2"].tokens) == 6
    engine.abort("s1")  # finished / unknown ids are no-ops
    engine.abort("nope")
    assert not engine.has_work()


def test_abort_of_a_waiting_sequence(engine):
    engine.options.max_batch_size = 1
    engine.submit(request("run", chat(engine, PROMPTS[0]), greedy(3, ignore_eos=True)))
    engine.submit(request("wait", chat(engine, PROMPTS[1]), greedy(3)))
    collect(engine.step(), got := {})
    assert "wait" in engine.waiting
    engine.abort("wait")
    run_all(engine, got)
    assert got["wait"].tokens == [] and got["wait"].last.finish_reason == "abort"
    assert got["wait"].last.prompt_tokens > 0 and got["wait"].last.prefill_computed_tokens == 0


def test_stop_string_ends_on_the_token_that_completes_it(engine, reference):
    tok = engine.tokenizer
    stop = tok.decode_raw(reference[6:8]).strip()[:4]
    assert stop
    engine.submit(request("s", chat(engine, PROMPTS[1]), greedy(12, ignore_eos=True, stop_strings=(stop,))))
    out = run_all(engine)["s"]
    assert out.last.finish_reason == "stop_string" and out.last.matched_stop == stop
    assert out.tokens == reference[:len(out.tokens)]
    assert stop in tok.decode_raw(out.tokens) and stop not in tok.decode_raw(out.tokens[:-1])


def test_stop_token_and_max_tokens_and_eos(engine, reference):
    stop_id = reference[5]
    engine.submit(request("tok", chat(engine, PROMPTS[1]), greedy(12, ignore_eos=True, stop_token_ids=(stop_id,))))
    engine.submit(request("len", chat(engine, PROMPTS[1]), greedy(5, ignore_eos=True)))
    engine.submit(request("eos", chat(engine, PROMPTS[0]), greedy(64)))
    out = run_all(engine)
    assert out["tok"].last.finish_reason == "stop_token" and out["tok"].last.matched_stop == stop_id
    assert out["tok"].tokens == reference[:reference.index(stop_id) + 1]
    assert out["len"].last.finish_reason == "length" and out["len"].tokens == reference[:5]
    assert out["eos"].last.finish_reason == "eos" and out["eos"].tokens[-1] in engine.tokenizer.eos_token_ids
    assert len(out["eos"].tokens) < 64


def test_logprobs_are_model_distribution_with_sorted_alternatives(engine):
    engine.submit(request("lp", chat(engine, PROMPTS[0]), greedy(4, top_logprobs=5)))
    out = run_all(engine)["lp"]
    for u in out.updates:
        for tok, lp, top in zip(u.token_ids, u.logprobs, u.top_logprobs):
            assert len(top) == 5 and top[0][0] == tok and abs(top[0][1] - lp) < 1e-6
            assert all(a[1] >= b[1] for a, b in zip(top, top[1:])) and lp <= 0


def test_seeded_sampling_is_independent_of_batch_composition(engine):
    ids = chat(engine, PROMPTS[2])
    params = SamplingParams(temperature=0.9, top_p=0.95, top_k=50, seed=1234, max_new_tokens=10, ignore_eos=True)
    engine.submit(request("alone", ids, params))
    alone = run_all(engine)["alone"].tokens
    engine.prefix_cache.clear()
    # same seed inside a crowd: other prompts, other seeds, submitted before and after
    engine.submit(request("o1", chat(engine, PROMPTS[0]), SamplingParams(seed=1, max_new_tokens=7)))
    engine.submit(request("o2", ids, SamplingParams(seed=2, max_new_tokens=12, ignore_eos=True)))
    engine.submit(request("crowd", ids, params))
    engine.submit(request("o3", chat(engine, PROMPTS[3]), SamplingParams(temperature=0.5, seed=3, max_new_tokens=3)))
    out = run_all(engine)
    assert out["crowd"].tokens == alone
    engine.submit(request("other-seed", ids, SamplingParams(temperature=0.9, top_p=0.95, top_k=50, seed=99,
                                                            max_new_tokens=10, ignore_eos=True)))
    assert run_all(engine)["other-seed"].tokens != alone


def test_continuous_batching_gives_the_same_greedy_tokens(engine, reference):
    engine.submit(request("early", chat(engine, PROMPTS[3]), greedy(14, ignore_eos=True)))
    got = {}
    for _ in range(4):
        collect(engine.step(), got)
    engine.submit(request("late", chat(engine, PROMPTS[1]), greedy(12, ignore_eos=True)))
    run_all(engine, got)
    assert got["late"].tokens == reference


def test_max_batch_size_queues_the_rest(engine, reference):
    engine.options.max_batch_size = 2
    ids = chat(engine, PROMPTS[1])
    for i in range(3):
        engine.submit(request(f"q{i}", ids, greedy(12, ignore_eos=True)))
    got = {}
    while engine.has_work():
        collect(engine.step(), got)
        assert len(engine.running) <= 2
    assert all(got[f"q{i}"].tokens == reference for i in range(3))


def test_expect_concurrency_widens_the_batch_cap_within_its_limit(engine):
    engine.options.max_batch_size = 4
    engine.expect_concurrency(2)
    assert engine.options.max_batch_size == 4  # never narrowed
    engine.expect_concurrency(48)
    assert engine.options.max_batch_size == 48
    engine.expect_concurrency(10 ** 6)
    assert engine.options.max_batch_size == engine.options.max_batch_limit


def test_bad_sequences_end_with_error_and_others_continue(engine):
    too_long = [1] * engine.max_positions
    engine.submit(request("long", too_long, greedy(2)))
    engine.submit(request("empty", [], greedy(2)))
    engine.submit(request("badid", [10 ** 9], greedy(2)))
    engine.submit(request("fine", chat(engine, PROMPTS[0]), greedy(3, ignore_eos=True)))
    out = run_all(engine)
    for sid in ("long", "empty", "badid"):
        assert out[sid].last.finish_reason == "error" and out[sid].last.error and out[sid].tokens == []
    assert "max positions" in out["long"].last.error
    assert len(out["fine"].tokens) == 3 and out["fine"].last.finish_reason == "length"
    with pytest.raises(ValueError):
        engine.submit(request("fine2", [1, 2], greedy(1)))
        engine.submit(request("fine2", [1, 2], greedy(1)))
    run_all(engine)


def test_bfloat16_option_runs_the_same_engine():
    eng = load_backend("embedded", TEST_MODEL, dtype="bfloat16")
    assert eng.model.embed.dtype == torch.bfloat16 and eng.pool.k.dtype == torch.bfloat16
    eng.submit(request("bf", chat(eng, PROMPTS[1]), greedy(4, ignore_eos=True)))
    out = run_all(eng)["bf"]
    assert len(out.tokens) == 4 and all(math.isfinite(lp) and lp <= 0 for lp in out.logprobs)


def test_load_errors_are_clear():
    from parareason.backends.base import BackendError

    with pytest.raises(BackendError, match="smollm2-135m"):
        load_backend("embedded", "no-such-model")
    with pytest.raises(TypeError, match="max_batch_size"):
        load_backend("embedded", TEST_MODEL, max_batch=3)
