"""Sampling in C (kernels/sampling.c): `sample_batch` with sampler.py's semantics, faster.

sampler.py runs ~10 torch ops over the 151k vocabulary per row (log-softmax, the scaled
softmax, block maxima, ...), each a pass over memory on one thread: ~0.6 ms a row, a
fifth of a 64-row decode step (qwen2.5-0.5b-coder q8). The C kernel makes two passes a
row and spreads the rows over the kernels' threads.

Same contract as sampler.sample_batch: one uniform draw from the row's generator per
sampled token and none for greedy rows, drawn here before the kernel runs; the same
nucleus, top-k and tie rules; logprobs at temperature 1. The bits differ from torch's by
rounding (sums in blocks, exp by a polynomial), so a draw within ~1e-7 of a CDF boundary
may pick the neighbouring token. Rows the kernel does not take (more than 64 top
logprobs, logits that are not float32 rows of one vocabulary) go through sampler.py.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Sequence

import torch

from parareason.backends.base import SamplingParams
from parareason.backends.embedded import sampler
from parareason.backends.embedded.kernel_library import available, library, threads
from parareason.backends.embedded.sampler import Sampled


class _Params(ctypes.Structure):
    """kernels/sampling.c's smp_params."""
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int), ("top_p", ctypes.c_double),
                ("top_logprobs", ctypes.c_int), ("uniform", ctypes.c_double)]


def usable() -> bool:
    return available() is None


@lru_cache(maxsize=1)
def max_top_logprobs() -> int:
    return int(library().sample_max_top())


def _takes(x: object, p: SamplingParams, vocab: int) -> bool:
    return (isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.dim() == 1 and x.numel() == vocab
            and x.is_contiguous() and 0 <= p.top_logprobs <= max_top_logprobs())


def sample_batch(logits: Sequence[torch.Tensor], params: Sequence[SamplingParams],
                 generators: Sequence[torch.Generator], lib: ctypes.CDLL | None = None) -> list[Sampled | Exception]:
    """sampler.sample_batch, in C where it can."""
    n = len(logits)
    if not n:
        return []
    first = logits[0]
    vocab = first.numel() if isinstance(first, torch.Tensor) else 0
    mine = [b for b in range(n) if vocab and _takes(logits[b], params[b], vocab)]
    out: list[Sampled | Exception | None] = [None] * n
    taken = set(mine)
    others = [b for b in range(n) if b not in taken]
    if others:
        for b, s in zip(others, sampler.sample_batch([logits[b] for b in others], [params[b] for b in others],
                                                     [generators[b] for b in others])):
            out[b] = s
    if mine:
        for b, s in zip(mine, _in_c([logits[b] for b in mine], [params[b] for b in mine],
                                    [generators[b] for b in mine], vocab, lib or library())):
            out[b] = s
    return out  # type: ignore[return-value]


def _in_c(logits: list[torch.Tensor], params: list[SamplingParams], generators: list[torch.Generator],
          vocab: int, lib: ctypes.CDLL) -> list[Sampled | Exception]:
    n, top = len(logits), max_top_logprobs()
    rows = (ctypes.c_void_p * n)(*(x.data_ptr() for x in logits))
    cfg = (_Params * n)()
    for c, p, g in zip(cfg, params, generators):
        sampled = p.temperature > 0
        # the row's one draw, as sampler._draw takes it; none for a greedy row
        u = torch.rand((), generator=g, dtype=torch.float64).item() if sampled else 0.0
        c.temperature, c.top_k, c.top_p, c.top_logprobs, c.uniform = p.temperature, p.top_k, p.top_p, \
            p.top_logprobs, u
    tokens = torch.empty(n, dtype=torch.int32)
    logprobs = torch.empty(n, dtype=torch.float32)
    status = torch.empty(n, dtype=torch.int32)
    top_ids = torch.empty((n, top), dtype=torch.int32)
    top_vals = torch.empty((n, top), dtype=torch.float32)
    lib.sample_rows(rows, n, vocab, cfg, tokens.data_ptr(), logprobs.data_ptr(), status.data_ptr(),
                    top_ids.data_ptr(), top_vals.data_ptr(), threads())
    out: list[Sampled | Exception] = []
    for b, (p, st, tok, lp) in enumerate(zip(params, status.tolist(), tokens.tolist(), logprobs.tolist())):
        if st == 1:
            out.append(ValueError("logits hold NaN or +inf, or every one is -inf: nothing to sample"))
        elif st:
            out.append(MemoryError(f"sampling: no memory for the scratch of a {vocab}-token row"))
        else:
            k = p.top_logprobs
            pairs = list(zip(top_ids[b, :k].tolist(), top_vals[b, :k].tolist())) if k > 0 else None
            out.append(Sampled(tok, lp, pairs))
    return out
