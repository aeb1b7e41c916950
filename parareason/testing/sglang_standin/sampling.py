"""What SGLang's sampler does to seeds and logprobs, applied to the stand-in's backend.

`layers/sampler.py`: logprobs are log_softmax(logits / T) unless the request is
greedy (top_k <= 1 after `SamplingParams.normalize`, which maps T < 1e-6 to
top_k = 1) or the server runs with SGLANG_RETURN_ORIGINAL_LOGPROB=1.
`sampling/sampling_batch_info.py`: sampling_seed is used only with
--enable-deterministic-inference.
"""
from __future__ import annotations

import math
import random
from dataclasses import replace

from parareason.backends.base import GenerationRequest, SamplingParams, SeqUpdate
from parareason.testing.sglang_standin.modes import StandinModes

_SAMPLING_EPS = 1e-6  # sampling/sampling_params.py


def is_greedy(p: SamplingParams) -> bool:
    return p.temperature < _SAMPLING_EPS or p.top_k == 1


def apply_seed_mode(req: GenerationRequest, modes: StandinModes) -> GenerationRequest:
    """Without deterministic inference the server samples with its own randomness."""
    if modes.deterministic_inference or req.params.seed is None:
        return req
    return replace(req, params=replace(req.params, seed=random.getrandbits(31)))


def scale_logprobs(u: SeqUpdate, p: SamplingParams, modes: StandinModes) -> tuple[list[float], list | None]:
    """The update's (logprobs, top_logprobs) as the server would report them at temperature T."""
    if modes.original_logprob or is_greedy(p) or p.temperature == 1.0:
        return list(u.logprobs), u.top_logprobs
    t = p.temperature
    lps: list[float] = []
    tops: list[list[tuple[int, float]]] | None = [] if u.top_logprobs is not None else None
    for i, lp in enumerate(u.logprobs):
        alts = u.top_logprobs[i] if u.top_logprobs is not None and i < len(u.top_logprobs) else []
        # Renormalise lp/T over the reported alternatives (and the sampled token).
        pool = {tok: a for tok, a in alts}
        if u.token_ids[i] not in pool:
            pool[u.token_ids[i]] = lp
        log_z = _logsumexp([a / t for a in pool.values()])
        lps.append(lp / t - log_z)
        if tops is not None:
            tops.append([(tok, a / t - log_z) for tok, a in alts])
    return lps, tops


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))
