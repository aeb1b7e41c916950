"""sampler_kernel.py / kernels/sampling.c: the C sampler draws what sampler.py draws (the same
tokens, logprobs to rounding), one draw per sampled row, rows independent of each other and
of the threads, the plain C build the same bits, bad rows failing alone, and the engine's
seeded samples unchanged."""
from __future__ import annotations

import pytest
import torch

from parareason.backends.base import SamplingParams
from parareason.backends.embedded import kernel_library, sampler, sampler_kernel
from parareason.backends.registry import load_backend
from tests.backends.test_engine_sampler import MIXED, gens, random_rows
from tests.support.engine_util import PROMPTS, TEST_MODEL, request, run_all

why_not = kernel_library.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"C kernels unavailable: {why_not}")
PLAIN_C = tuple(f for f in kernel_library.FLAGS if f != "-march=native")


def close(a, b) -> bool:
    """The same token and top ids; logprobs equal to float32 rounding of ~20-nat values."""
    same_top = (a.top is None) == (b.top is None) and [i for i, _ in a.top or []] == [i for i, _ in b.top or []]
    vals = [(u, v) for (_, u), (_, v) in zip(a.top or [], b.top or [])] + [(a.logprob, b.logprob)]
    return a.token == b.token and same_top and all(abs(u - v) < 2e-5 for u, v in vals)


@pytest.mark.parametrize("vocab", [6400, 5000, 151936])
def test_the_kernel_draws_what_the_torch_sampler_draws(vocab):
    logits = random_rows(len(MIXED), vocab, seed=3)
    mine, ref = gens(range(len(MIXED))), gens(range(len(MIXED)))
    tokens = set()
    for _ in range(20):  # the same generators step after step: one draw per sampled row
        got = sampler_kernel.sample_batch(logits, MIXED, mine)
        want = sampler.sample_batch(logits, MIXED, ref)
        assert all(close(a, b) for a, b in zip(got, want)), [(a, b) for a, b in zip(got, want) if not close(a, b)]
        tokens |= {(b, s.token) for b, s in enumerate(got)}
    assert len(tokens) > 30
    assert [g.get_state().tolist() for g in mine] == [g.get_state().tolist() for g in ref]


def test_the_filters_keep_only_allowed_tokens():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0])

    def drawn(**kw):
        p, g = SamplingParams(**{"temperature": 1.0, **kw}), gens([0])[0]
        return {sampler_kernel.sample_batch([logits], [p], [g])[0].token for _ in range(300)}

    assert drawn(temperature=0.0) == {1} and drawn(top_k=2) == {1, 2}
    assert drawn(top_p=0.8) == {1, 2} and drawn(top_p=0.3) == {1} and drawn() == {0, 1, 2, 3, 4}
    flat = torch.zeros(4000)  # the 0.9 nucleus holds 3600 tokens: thresholds down to the sort
    p, g = SamplingParams(temperature=1.0, top_p=0.9), gens([1])[0]
    got = {sampler_kernel.sample_batch([flat], [p], [g])[0].token for _ in range(400)}
    assert max(got) > 1000 and len(got) > 300 and max(got) < 3600


def test_a_rows_result_does_not_depend_on_the_batch_the_threads_or_the_build():
    logits = random_rows(len(MIXED), 6400, seed=5, bf16=True)  # ties, as a bf16 model's
    full = sampler_kernel.sample_batch(logits, MIXED, gens(range(len(MIXED))))
    for keep in ([1], [2, 3], [8, 7, 1]):
        sub = sampler_kernel.sample_batch([logits[i] for i in keep], [MIXED[i] for i in keep], gens(keep))
        assert sub == [full[i] for i in keep]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sampler_kernel.sample_batch(logits, MIXED, gens(range(len(MIXED))))
    finally:
        torch.set_num_threads(before)
    plain = sampler_kernel.sample_batch(logits, MIXED, gens(range(len(MIXED))), lib=kernel_library.library(PLAIN_C))
    assert one == full and plain == full


def test_a_bad_row_fails_alone_and_masked_tokens_are_never_drawn():
    good = torch.randn(3000)
    masked = good.clone()
    masked[::2] = float("-inf")
    nan = good.clone()
    nan[7] = float("nan")
    rows = [good, nan, torch.full((3000,), float("-inf")), masked, good.double(), torch.randn(2, 5)]
    params = [SamplingParams(temperature=0.9, top_logprobs=3)] * len(rows)
    got = sampler_kernel.sample_batch(rows, params, gens(range(len(rows))))
    assert isinstance(got[1], ValueError) and isinstance(got[2], ValueError) and "NaN" in str(got[1])
    assert isinstance(got[5], Exception)  # not a row of logits: sampler.py's error, as before
    assert got[3].token % 2 == 1 and all(i % 2 == 1 for i, _ in got[3].top)
    assert got[4] == sampler.sample_batch([good.double()], params[:1], gens([4]))[0]  # not float32: sampler.py
    for _ in range(200):
        s = sampler_kernel.sample_batch([masked], [SamplingParams(temperature=5.0)], gens([0]))[0]
        assert s.token % 2 == 1


def test_more_top_logprobs_than_the_kernel_keeps_go_through_the_torch_sampler():
    x = random_rows(1, 3000, seed=8)
    p = [SamplingParams(temperature=0.0, top_logprobs=sampler_kernel.max_top_logprobs() + 1)]
    assert sampler_kernel.sample_batch(x, p, gens([0])) == sampler.sample_batch(x, p, gens([0]))


def test_the_engine_samples_in_c_and_draws_the_torch_samplers_tokens():
    engine = load_backend("embedded", TEST_MODEL, dtype="float32")
    assert engine.sampling == "c"
    tok = engine.tokenizer

    def tokens(mode: str):
        engine.sampling = mode
        for i, prompt in enumerate(PROMPTS):
            p = SamplingParams(temperature=0.8, top_p=0.9, seed=i, max_new_tokens=24, top_logprobs=2)
            engine.submit(request(f"{mode}{i}", tok.chat_ids([{"role": "user", "content": prompt}]), p))
        return {k.removeprefix(mode): v.tokens for k, v in run_all(engine).items()}

    assert tokens("c") == tokens("torch")
