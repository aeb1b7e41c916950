"""Engine sampling and prefix matching, without a model (fast, exact)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from parareason.backends.base import SamplingParams
from parareason.backends.embedded import sampler
from parareason.backends.embedded.kv_pool import KVPool
from parareason.backends.embedded.prefix_cache import PrefixCache, longest_prefix
from parareason.backends.embedded.sampler import (
    Sampled,
    _argmax_rows,
    _sample_filtered,
    _topk_rows,
    make_generator,
    sample,
    sample_batch,
)


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


# A mixed batch: every path of the sampler, several temperatures and top_logprobs sizes.
MIXED = [
    SamplingParams(temperature=0.0, top_logprobs=3),
    SamplingParams(temperature=0.7, top_logprobs=5),
    SamplingParams(temperature=1.0),
    SamplingParams(temperature=1.3, top_logprobs=5),
    SamplingParams(temperature=0.7, top_k=20, top_logprobs=2),
    SamplingParams(temperature=0.9, top_p=0.9),
    SamplingParams(temperature=0.0),
    SamplingParams(temperature=1.1, top_k=50, top_p=0.8, top_logprobs=1),
    SamplingParams(temperature=0.4, top_logprobs=20),
]


def reference(x: torch.Tensor, p: SamplingParams, g: torch.Generator) -> Sampled:
    """The sampler before batching, one row at a time (top-k / top-p rows: the per-row path)."""
    if p.temperature <= 0:
        token = int(torch.argmax(x))
    elif p.top_k <= 0 and p.top_p >= 1.0:
        cdf = torch.softmax(x / p.temperature, dim=0).cumsum(0)
        u = torch.rand((), generator=g, dtype=torch.float64).item() * cdf[-1].item()
        token = min(int(torch.searchsorted(cdf, torch.tensor([u]), right=True)), len(x) - 1)
    else:
        token = _sample_filtered(x, p, g)
    logp = torch.log_softmax(x, dim=0)
    top = None
    if p.top_logprobs > 0:
        vals, idx = torch.topk(logp, p.top_logprobs)
        top = list(zip(idx.tolist(), vals.tolist()))
    return Sampled(token, float(logp[token]), top)


def random_rows(n, vocab, seed, bf16=False):
    g = torch.Generator().manual_seed(seed)
    rows = [4 * torch.randn(vocab, generator=g) for _ in range(n)]
    return [r.bfloat16().float() for r in rows] if bf16 else rows  # bf16: ties, as a bf16 model's


def gens(seeds):
    return [make_generator(s) for s in seeds]


@pytest.mark.parametrize("vocab", [6400, 5000])  # a multiple of the search block, and not
def test_sample_batch_matches_the_per_row_reference_for_a_mixed_batch(vocab):
    logits = random_rows(len(MIXED), vocab, seed=3)
    seeds = range(len(MIXED))
    mine, ref = gens(seeds), gens(seeds)
    tokens = set()
    for _ in range(30):  # the same generators step after step: one draw per sampled row
        got = sample_batch(logits, MIXED, mine)
        assert got == [reference(x, p, g) for x, p, g in zip(logits, MIXED, ref)]
        tokens |= {(b, s.token) for b, s in enumerate(got)}
    assert len(tokens) > 40  # the draws really move the sampled rows around
    assert [len(s.top or []) for s in got] == [p.top_logprobs for p in MIXED]


def test_a_rows_result_does_not_depend_on_the_rest_of_the_batch(monkeypatch):
    monkeypatch.setattr(sampler, "_CHUNK_FLOATS", 3 * 6400)  # chunks of 3 rows: cross their borders
    logits = random_rows(len(MIXED), 6400, seed=5, bf16=True)
    full = sample_batch(logits, MIXED, gens(range(len(MIXED))))
    assert len({s.token for s in full}) > 5
    for keep in ([1], [2, 3], [0, 4, 5], [8, 7, 1], list(range(len(MIXED)))[::-1]):
        sub = sample_batch([logits[i] for i in keep], [MIXED[i] for i in keep], gens(keep))
        assert sub == [full[i] for i in keep]
        assert sub == [sample(logits[i], MIXED[i], make_generator(i)) for i in keep]


def test_top_logprobs_among_ties_are_the_top_values_and_independent_of_other_rows():
    x = torch.zeros(3200)
    x[100:140] = 2.0  # 40 tied best tokens
    x[2000] = 3.0
    params = [SamplingParams(temperature=0.0, top_logprobs=k) for k in (1, 3, 8, 25, 3)]
    got = sample_batch([x] * 5, params, gens([0] * 5))
    logp = torch.log_softmax(x, 0)
    for s, p in zip(got, params):
        want = torch.topk(logp, p.top_logprobs).values.tolist()
        assert [v for _, v in s.top] == want and s.top[0][0] == 2000 == s.token
        assert len({i for i, _ in s.top}) == p.top_logprobs and all(logp[i] == v for i, v in s.top)
        assert s == sample(x, p, make_generator(0))


def test_block_argmax_and_topk_equal_torchs():
    x = torch.randn(6, 1024, generator=torch.Generator().manual_seed(2)).bfloat16().float()
    x[1, 700] = x[1, 900] = 9.0  # tie for the maximum: the first one wins
    x[2] = 0.0
    x[3, 5] = float("nan")  # NaN counts as the maximum, as in torch.argmax
    x[4, 130] = x[4, 1000] = float("nan")
    x[5] = float("-inf")
    assert _argmax_rows(x).tolist() == x.argmax(1).tolist()
    y = torch.randn(4, 1024, generator=torch.Generator().manual_seed(3))
    for k in (1, 2, 5):  # the block search (4 * k * 128 <= 1024)
        assert [torch.equal(a, b) for a, b in zip(_topk_rows(y, k), torch.topk(y, k, dim=1))] == [True, True]
    assert torch.equal(_topk_rows(y, 3)[0], torch.topk(y, 3, dim=1)[0])
    assert torch.equal(_topk_rows(y[:, :1000], 3)[1], torch.topk(y[:, :1000], 3, dim=1)[1])  # no blocks


def test_sample_batch_uses_one_draw_per_sampled_row_and_none_for_greedy():
    logits = random_rows(len(MIXED), 5000, seed=1)
    g = gens([7] * len(MIXED))
    sample_batch(logits, MIXED, g)
    fresh = make_generator(7)
    first, second = (torch.rand((), generator=fresh, dtype=torch.float64) for _ in range(2))
    for gen, p in zip(g, MIXED):
        assert torch.rand((), generator=gen, dtype=torch.float64) == (first if p.temperature <= 0 else second)


def test_sample_batch_keeps_a_bad_row_to_itself():
    logits, params = random_rows(4, 640, seed=4), MIXED[:4]
    logits[1][7] = float("nan")  # as today: no error, a token and a NaN logprob
    got = sample_batch(logits, params, gens(range(4)))
    want = [reference(x, p, g) for x, p, g in zip(logits, params, gens(range(4)))]
    assert got[1].token == want[1].token and got[1].logprob != got[1].logprob
    assert [got[i] for i in (0, 2, 3)] == [want[i] for i in (0, 2, 3)]
    # A row that cannot be sampled at all (not a [vocab] vector) fails alone.
    got = sample_batch([logits[0], torch.zeros(5, 3), logits[2]], params[:3], gens(range(3)))
    assert isinstance(got[1], Exception)
    assert [got[0], got[2]] == [sample(logits[i], params[i], make_generator(i)) for i in (0, 2)]
    got = sample_batch([None, logits[1]], params[:2], gens(range(2)))
    assert isinstance(got[0], Exception) and isinstance(got[1], Sampled)
    with pytest.raises(ValueError):
        sample(torch.zeros(5, 3), params[0], make_generator(0))
    assert sample_batch([], [], []) == []


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
