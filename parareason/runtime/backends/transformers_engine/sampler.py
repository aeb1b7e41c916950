"""Per-sequence sampling: temperature (0 = greedy), top-k, top-p, own RNG.

Each sequence owns a `torch.Generator` and draws exactly one uniform number per
token, then inverts the (filtered) CDF. So a seed fixes the draws no matter which
other sequences share the batch, and the choice is robust to float noise of 1e-6
in the logits (it only flips if the draw lands that close to a CDF boundary).

Reported logprobs are log-softmax of the raw logits: the model's own distribution
at temperature 1, independent of the sampling settings. That makes them comparable
across threads sampled at different temperatures (confidence policies average them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from parareason.runtime.backends.base import SamplingParams

# Nucleus search first looks at this many top tokens; exact fallback to a full sort.
_TOP_P_PROBE = 512


@dataclass
class Sampled:
    token: int
    logprob: float
    top: list[tuple[int, float]] | None


def make_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()  # non-deterministic, as asked
    else:
        g.manual_seed(seed)
    return g


def _pick(probs: torch.Tensor, generator: torch.Generator) -> int:
    """Index drawn from unnormalized `probs` by inverse CDF with one uniform draw."""
    cdf = probs.cumsum(0)
    u = torch.rand((), generator=generator, dtype=torch.float64).item() * cdf[-1].item()
    idx = int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype), right=True).item())
    return min(idx, len(probs) - 1)


def _sample_filtered(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator) -> int:
    scaled = logits / p.temperature
    vocab = scaled.shape[0]
    if p.top_k <= 0 and p.top_p >= 1.0:
        return _pick(torch.softmax(scaled, dim=0), generator)
    if p.top_k > 0:  # top-k first, then top-p within it (transformers' order)
        vals, idx = torch.topk(scaled, min(p.top_k, vocab))
        cand = torch.softmax(vals, dim=0)
    else:
        # Top-p alone: the nucleus is usually small, so look at the best few hundred
        # tokens first; if they hold less than top_p of the mass, sort everything.
        probs = torch.softmax(scaled, dim=0)
        cand, idx = torch.topk(probs, min(_TOP_P_PROBE, vocab))
        if cand.sum().item() < p.top_p and len(cand) < vocab:
            cand, idx = torch.sort(probs, descending=True)
    if p.top_p < 1.0:
        before = cand.cumsum(0) - cand  # mass of better tokens
        keep = before < p.top_p  # smallest set reaching top_p, as transformers' TopPLogitsWarper
        keep[0] = True
        cand = torch.where(keep, cand, torch.zeros_like(cand))
    return int(idx[_pick(cand, generator)].item())


def sample(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator) -> Sampled:
    """Choose the next token from float32 logits [vocab]."""
    if p.temperature <= 0:
        token = int(torch.argmax(logits).item())
    else:
        token = _sample_filtered(logits, p, generator)
    logp = torch.log_softmax(logits, dim=0)
    top = None
    if p.top_logprobs > 0:
        vals, idx = torch.topk(logp, min(p.top_logprobs, logp.shape[0]))
        top = list(zip(idx.tolist(), vals.tolist()))
    return Sampled(token, float(logp[token].item()), top)
