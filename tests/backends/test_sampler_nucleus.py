"""The sampler's top-p head (sampler.nucleus_head) and block top-k draw the tokens the
plain top-512 probe / torch.topk path drew, with the same generator states."""
from __future__ import annotations

import pytest
import torch

from parareason.backends.base import SamplingParams
from parareason.backends.embedded import sampler
from parareason.backends.embedded.sampler import _sample_filtered, make_generator, nucleus_head


def probe_reference(logits: torch.Tensor, p: SamplingParams, g: torch.Generator) -> int:
    """The filtered sampler before the head: torch.topk for top-k, the 512 probe for top-p."""
    scaled = logits / p.temperature
    if p.top_k > 0:
        vals, idx = torch.topk(scaled, min(p.top_k, len(scaled)))
        cand = torch.softmax(vals, dim=0)
    else:
        probs = torch.softmax(scaled, dim=0)
        cand, idx = torch.topk(probs, min(512, len(probs)))
        if cand.sum().item() < p.top_p and len(cand) < len(probs):
            cand, idx = torch.sort(probs, descending=True)
    if p.top_p < 1.0:
        before = cand.cumsum(0) - cand
        keep = before < p.top_p
        keep[0] = True
        cand = torch.where(keep, cand, torch.zeros_like(cand))
    cdf = cand.cumsum(0)
    u = torch.rand((), generator=g, dtype=torch.float64).item() * cdf[-1].item()
    at = int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype), right=True).item())
    return int(idx[min(at, len(cdf) - 1)].item())


def rows(vocab: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for scale in (1.0, 3.0, 6.0):  # flat to peaked, as a model's distributions
        x = scale * torch.randn(vocab, generator=g)
        x[torch.randint(0, vocab, (3,), generator=g)] += 4 * scale  # a few clear favourites
        out.append(x)
    return out


PARAMS = [SamplingParams(temperature=t, top_p=tp) for t in (0.7, 1.0) for tp in (0.5, 0.9, 0.95, 0.99)] + \
    [SamplingParams(temperature=0.8, top_k=k, top_p=tp) for k in (20, 50) for tp in (1.0, 0.9)]


@pytest.mark.parametrize("vocab", [12800, 6400, 5000])  # a multiple of the block, and not
def test_head_and_block_topk_draw_what_the_probe_drew(vocab):
    heads = 0
    for x in rows(vocab, seed=vocab):
        for i, p in enumerate(PARAMS):
            mine, ref = make_generator(i), make_generator(i)
            got = [_sample_filtered(x, p, mine) for _ in range(6)]
            assert got == [probe_reference(x, p, ref) for _ in range(6)], (vocab, p)
            if p.top_k == 0:
                heads += nucleus_head(torch.softmax(x / p.temperature, 0), p.top_p) is not None
    assert heads >= 6  # most top-p rows really took the head


def test_a_nucleus_past_the_head_falls_back_to_the_probe_or_the_sort():
    flat = torch.zeros(6400)  # the 0.9 nucleus holds 5760 tokens: more than any head
    assert nucleus_head(torch.softmax(flat, 0), 0.9) is None
    p = SamplingParams(temperature=1.0, top_p=0.9)
    mine, ref = make_generator(3), make_generator(3)
    assert [_sample_filtered(flat, p, mine) for _ in range(10)] == [probe_reference(flat, p, ref) for _ in range(10)]
    nan = torch.randn(6400)
    nan[9] = float("nan")
    assert nucleus_head(torch.softmax(nan, 0), 0.9) is None  # NaN: the probe's own handling


def test_a_draw_at_the_very_top_of_the_cdf_takes_the_probes_last_token(monkeypatch):
    # u rounded up to the total mass: the probe then returned its list's last entry
    monkeypatch.setattr(sampler, "_draw", lambda cdf, g: cdf[-1].item())
    x = rows(6400, seed=1)[2]
    p = SamplingParams(temperature=0.7, top_p=0.9)
    assert nucleus_head(torch.softmax(x / 0.7, 0), 0.9) is not None
    want = torch.topk(torch.softmax(x / 0.7, 0), 512).indices[-1].item()
    assert _sample_filtered(x, p, make_generator(0)) == want
