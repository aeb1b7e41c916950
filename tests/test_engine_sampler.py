"""Engine sampling and prefix matching, without a model (fast, exact)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from parareason.runtime.backends.base import SamplingParams
from parareason.runtime.backends.transformers_engine.kv_pool import KVPool
from parareason.runtime.backends.transformers_engine.prefix_cache import PrefixCache, longest_prefix
from parareason.runtime.backends.transformers_engine.sampler import make_generator, sample


def draws(logits, n=300, **kw):
    g = make_generator(0)
    p = SamplingParams(**{"temperature": 1.0, **kw})
    return [sample(logits, p, g).token for _ in range(n)]


def test_greedy_top_k_and_top_p_keep_only_allowed_tokens():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0])
    assert set(draws(logits, temperature=0.0, n=5)) == {1}
    assert set(draws(logits, top_k=2)) == {1, 2}
    # softmax ~ [.02, .46, .42, .01, .07]: the nucleus for top_p=0.8 is {1, 2}
    assert set(draws(logits, top_p=0.8)) == {1, 2}
    assert set(draws(logits, top_p=0.3)) == {1}


def test_top_p_nucleus_larger_than_the_probe_is_exact():
    logits = torch.zeros(4000)  # flat: the 0.9 nucleus holds 3600 tokens, far past the 512 probe
    got = draws(logits, top_p=0.9, n=400)
    assert max(got) > 1000 and len(set(got)) > 300


def test_same_seed_same_draws_and_logprob_is_temperature_one():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    p = SamplingParams(temperature=0.5, top_p=0.9, seed=5)
    g, h = make_generator(5), make_generator(5)
    assert [sample(logits, p, g).token for _ in range(20)] == [sample(logits, p, h).token for _ in range(20)]
    s = sample(logits, p, make_generator(5))
    assert abs(s.logprob - torch.log_softmax(logits, 0)[s.token].item()) < 1e-6


@dataclass
class Src:
    tokens: list[int]
    slots: list[int]
    logits: object = None


def test_longest_prefix_picks_the_longest_computed_match_and_prefers_free_logits():
    a = Src([1, 2, 3, 4, 5], [10, 11, 12, 13])  # KV of 4 tokens
    b = Src([1, 2, 9], [10, 11, 20])
    m = longest_prefix([1, 2, 3, 4, 5, 6], [b, a])
    assert m.source is a and m.length == 4
    assert longest_prefix([1, 2, 9, 9], [a, b]).source is b
    assert longest_prefix([7, 1], [a, b]).source is None
    free = Src([1, 2, 3], [10, 11, 30], logits=torch.zeros(3))
    m = longest_prefix([1, 2, 3], [a, free])
    assert m.source is free and m.reusable_logits(3) is not None
    assert longest_prefix([1, 2, 3], [a]).reusable_logits(3) is None


def test_prefix_cache_counts_shared_slots_once_and_frees_on_eviction():
    pool = KVPool(1, 1, 2, torch.float32, capacity=16)
    shared = pool.alloc(4)  # a live prompt's KV
    cache = PrefixCache(pool, max_tokens=6)
    for last in (5, 6):  # two finished siblings: the shared prompt plus one own token each
        pool.retain(shared)
        cache.put([1, 2, 3, 4, last], shared + pool.alloc(1), None)
    assert cache.cached_only_tokens() == 2  # the prompt is still held by its live owner
    pool.release(shared)  # the owner leaves
    assert cache.cached_only_tokens() == 6 and len(cache) == 2 and pool.used == 6
    pool.retain(shared)
    cache.put([1, 2, 3, 4, 8, 9], shared + pool.alloc(2), None)  # 8 > 6: the two oldest go
    assert cache.cached_only_tokens() == 6 and len(cache) == 1 and pool.used == 6
    cache.clear()
    assert pool.used == 0
