"""Per-sequence sampling: temperature (0 = greedy), top-k, top-p, own RNG.

Each sequence owns a `torch.Generator` and draws exactly one uniform number per token,
then inverts the (filtered) CDF. So a seed fixes the draws no matter which other
sequences share the batch, and the choice is robust to float noise of 1e-6 in the logits
(it only flips if the draw lands that close to a CDF boundary).

Reported logprobs are log-softmax of the raw logits: the model's own distribution at
temperature 1, independent of the sampling settings, so comparable across threads sampled
at different temperatures (confidence policies average them).

`sample_batch` runs the vocabulary-wide work as [rows, V] ops on chunks of rows, each op
row by row: a row's result does not depend on the other rows. `sample` is a batch of one.
The engine samples with sampler_kernel.py (the same rules in C) where it builds; this
module is its reference and the path without a compiler.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch

from parareason.backends.base import SamplingParams

# Nucleus search first looks at this many top tokens; exact fallback to a full sort.
_TOP_P_PROBE = 512
# Before the probe: the head above the k-th best block maximum, for these k (nucleus_head); a head this long: the probe.
_HEAD_BLOCKS = (8, 64)
_HEAD_MAX = 4096
_HEAD_MARGIN = 1e-6
# Rows per batched chunk: up to 2**18 floats (1 MB) per [rows, V] temporary, so one row of
# a 150k vocabulary. Bigger temporaries may come fresh from the OS at every step (glibc's
# mmap / trim thresholds): [256, 150k] at once took ~110k page faults per call and ran 1.25x
# slower than row by row, while multi-row chunks gained under 10% when they did not fault.
_CHUNK_FLOATS = 1 << 18
# Block width of the block-maximum searches (top-k, argmax): torch's own topk and argmax
# are scalar scans, several times slower over a 150k vocabulary than a vectorised amax.
_BLOCK = 128

T = TypeVar("T")


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


def sample(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator) -> Sampled:
    """Choose the next token from float32 logits [vocab]."""
    s = sample_batch([logits], [p], [generator])[0]
    if isinstance(s, Exception):
        raise s
    return s


def sample_batch(logits: Sequence[torch.Tensor], params: Sequence[SamplingParams],
                 generators: Sequence[torch.Generator]) -> list[Sampled | Exception]:
    """`sample` for every row b of (logits[b], params[b], generators[b]).

    A row that cannot be sampled gets its exception in its place; the others are unaffected.
    """
    width = max((x.numel() for x in logits if isinstance(x, torch.Tensor)), default=1)
    n = max(1, _CHUNK_FLOATS // max(1, width))
    out: list[Sampled | Exception] = []
    for i in range(0, len(logits), n):
        out += _sample_chunk(logits[i:i + n], params[i:i + n], generators[i:i + n])
    return out


def _sample_chunk(logits: Sequence[torch.Tensor], params: Sequence[SamplingParams],
                  generators: Sequence[torch.Generator]) -> list[Sampled | Exception]:
    try:  # all batched work happens here, before any row draws from its generator
        x = _as_matrix(logits)
        logp = torch.log_softmax(x, dim=1)
        top = _top_logprobs(logp, [p.top_logprobs for p in params])
        greedy = _greedy_tokens(x, params)
        cdfs = _unfiltered_cdfs(x, params)
    except Exception as e:
        if len(logits) == 1:
            return [e]
        # Retry row by row so that only the failing row(s) fail. Nothing was drawn yet.
        return [s for l, p, g in zip(logits, params, generators) for s in _sample_chunk([l], [p], [g])]
    tokens: list[int | Exception] = []
    for b, (row, p, g) in enumerate(zip(logits, params, generators)):
        if b in greedy:
            tokens.append(greedy[b])
        elif b in cdfs:
            tokens.append(_guarded(_invert, cdfs[b], g))
        else:
            tokens.append(_guarded(_sample_filtered, row, p, g))
    return [t if isinstance(t, Exception) else Sampled(t, logp[b, t].item(), top[b])
            for b, t in enumerate(tokens)]


def _guarded(fn: Callable[..., T], *args: object) -> T | Exception:
    try:
        return fn(*args)
    except Exception as e:
        return e


def _as_matrix(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """The rows as one float32 [R, V] tensor, to read only (one row: a view, no copy)."""
    x = rows[0][None] if len(rows) == 1 else torch.stack(list(rows))
    if x.dim() != 2:
        raise ValueError(f"logits must be 1-D [vocab], got {tuple(x.shape[1:])}")
    return x.float()


def _take(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """x[rows], without a copy when rows are all of them."""
    return x if len(rows) == x.shape[0] else x[rows]


def _top_logprobs(logp: torch.Tensor, ks: list[int]) -> list[list[tuple[int, float]] | None]:
    # One top-k per distinct k, not one with the largest k sliced: the order among tied
    # values may depend on k, and a row's answer must not depend on the other rows.
    top: list[list[tuple[int, float]] | None] = [None] * len(ks)
    for k in sorted({k for k in ks if k > 0}):
        rows = [b for b, kb in enumerate(ks) if kb == k]
        vals, idx = _topk_rows(_take(logp, rows), min(k, logp.shape[1]))
        for b, i, v in zip(rows, idx.tolist(), vals.tolist()):
            top[b] = list(zip(i, v))
    return top


def _greedy_tokens(x: torch.Tensor, params: Sequence[SamplingParams]) -> dict[int, int]:
    rows = [b for b, p in enumerate(params) if p.temperature <= 0]
    if not rows:
        return {}
    return dict(zip(rows, _argmax_rows(_take(x, rows)).tolist()))


def _unfiltered_cdfs(x: torch.Tensor, params: Sequence[SamplingParams]) -> dict[int, torch.Tensor]:
    """Row -> CDF of softmax(logits / temperature), for sampled rows without top-k / top-p."""
    rows = [b for b, p in enumerate(params) if p.temperature > 0 and _unfiltered(p)]
    if not rows:
        return {}
    temps = torch.tensor([params[b].temperature for b in rows], dtype=x.dtype)[:, None]
    cdf = torch.softmax(_take(x, rows) / temps, dim=1).cumsum_(dim=1)
    return dict(zip(rows, cdf))


def _blocks(x: torch.Tensor) -> torch.Tensor | None:
    """x [R, V] viewed as [R, V / _BLOCK, _BLOCK], or None when V is not a multiple."""
    r, v = x.shape
    return x.view(r, v // _BLOCK, _BLOCK) if v % _BLOCK == 0 and x.is_contiguous() else None


def _argmax_rows(x: torch.Tensor) -> torch.Tensor:
    """x.argmax(1): the first maximum (NaN counts as the largest), via block maxima."""
    blocks = _blocks(x)
    if blocks is None:
        return x.argmax(1)
    first = blocks.amax(2).argmax(1)  # the first block holding the row's maximum
    return first * _BLOCK + blocks[torch.arange(len(first)), first].argmax(1)


def _topk_rows(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk(x, k, dim=1): values and indices, largest first.

    Searches only the k blocks with the largest maxima: any element outside them has at
    least k elements of the row at or above it, so they hold a top k (ties may pick other
    indices of equal value than torch.topk would).
    """
    blocks = _blocks(x)
    if blocks is None or 4 * k * _BLOCK > x.shape[1]:
        return torch.topk(x, k, dim=1)
    r = x.shape[0]
    best = blocks.amax(2).topk(k, dim=1).indices  # [R, k]
    cand = blocks.gather(1, best[:, :, None].expand(r, k, _BLOCK)).view(r, k * _BLOCK)
    vals, at = cand.topk(k, dim=1)
    return vals, best.gather(1, at // _BLOCK) * _BLOCK + at % _BLOCK


def _pick(probs: torch.Tensor, generator: torch.Generator) -> int:
    return _invert(probs.cumsum(0), generator)  # index drawn from unnormalized probs, one draw


def _invert(cdf: torch.Tensor, generator: torch.Generator) -> int:
    """Index drawn from an unnormalized 1-D CDF with one uniform draw."""
    return _search(cdf, _draw(cdf, generator))


def _draw(cdf: torch.Tensor, generator: torch.Generator) -> float:
    return torch.rand((), generator=generator, dtype=torch.float64).item() * cdf[-1].item()


def _search(cdf: torch.Tensor, u: float) -> int:
    """The index of u in the CDF, at most the last one."""
    idx = int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype), right=True).item())
    return min(idx, len(cdf) - 1)


def _unfiltered(p: SamplingParams) -> bool:
    return p.top_k <= 0 and p.top_p >= 1.0


def _sample_filtered(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator) -> int:
    scaled = logits / p.temperature
    vocab = scaled.shape[0]
    if _unfiltered(p):
        return _pick(torch.softmax(scaled, dim=0), generator)
    if p.top_k > 0:  # top-k first, then top-p within it (transformers' order)
        vals, idx = _topk_rows(scaled[None], min(p.top_k, vocab))
        vals, idx = vals[0], idx[0]
        cand = torch.softmax(vals, dim=0)
    else:
        probs = torch.softmax(scaled, dim=0)
        head = nucleus_head(probs, p.top_p)
        if head is not None:  # the nucleus lies inside the head: the draw needs nothing else
            cand, idx = head
            cdf = _nucleus(cand, p.top_p).cumsum(0)
            u = _draw(cdf, generator)
            at = int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype), right=True).item())
            if at < len(cdf):
                return int(idx[at].item())
            cand, idx = _probe(probs, p.top_p)  # u rounded up to the total: as before, the list's last
            return int(idx[-1].item())
        cand, idx = _probe(probs, p.top_p)
    if p.top_p < 1.0:
        cand = _nucleus(cand, p.top_p)
    return int(idx[_pick(cand, generator)].item())


def _probe(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-p alone: the nucleus is usually small, so look at the best few hundred tokens
    first; if they hold less than top_p of the mass, sort everything."""
    cand, idx = torch.topk(probs, min(_TOP_P_PROBE, len(probs)))
    if cand.sum().item() < top_p and len(cand) < len(probs):
        cand, idx = torch.sort(probs, descending=True)
    return cand, idx


def _nucleus(cand: torch.Tensor, top_p: float) -> torch.Tensor:
    """cand (sorted, descending) with the tokens past the nucleus zeroed."""
    before = cand.cumsum(0) - cand  # mass of better tokens
    keep = before < top_p  # smallest set reaching top_p, as transformers' TopPLogitsWarper
    keep[0] = True
    return torch.where(keep, cand, torch.zeros_like(cand))


def nucleus_head(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(values, ids) of the best tokens, sorted, when they hold the whole top-p nucleus
    and a token after it; None to take the probe / sort path.

    The head is every token at or above the k-th largest block maximum (at least k
    tokens; every other token is below it), found with a block maximum, one compare and
    a small sort instead of a top-512 over the vocabulary. The nucleus, the CDF over it
    and the drawn token are then those of the probe: cumsum adds in order (in double), so
    a sorted list's prefix sums do not depend on what follows. Only equal probabilities
    may come in another order (here by id; torch.topk leaves theirs unspecified).
    """
    if top_p >= 1.0 or probs.dim() != 1:
        return None
    maxima = _block_maxima(probs)
    if maxima is None or bool(torch.isnan(maxima).any()):
        return None
    for k in _HEAD_BLOCKS:
        if k >= len(maxima):
            return None
        t = maxima.topk(k).values[-1]
        ids = _at_or_above(probs, maxima, t)
        if len(ids) > _HEAD_MAX:
            return None
        vals, order = probs[ids].sort(descending=True, stable=True)
        # The nucleus ended inside the head, with a margin over float32's rounding of the
        # running mass (~1e-7): no later token of a longer list could be kept either.
        if (vals.cumsum(0) - vals)[-1].item() > top_p + _HEAD_MARGIN:
            return vals, ids[order]
    return None


def _at_or_above(x: torch.Tensor, maxima: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(x >= t).nonzero() in the blocks whose maximum reaches t (a whole scan: ~150 us a row)."""
    ids = ((maxima >= t).nonzero() * _BLOCK + torch.arange(_BLOCK)).reshape(-1)
    ids = ids[ids < len(x)]
    return ids[x[ids] >= t]


def _block_maxima(x: torch.Tensor) -> torch.Tensor | None:
    """The maxima of x's blocks of _BLOCK (the last one may be shorter)."""
    v = x.shape[0]
    full = v // _BLOCK * _BLOCK
    if full == 0:
        return None
    m = x[:full].view(-1, _BLOCK).amax(1)
    return m if full == v else torch.cat([m, x[full:].amax()[None]])
