"""Helpers shared by the policies: per-sample scores, answer votes, sampling overrides."""
from __future__ import annotations

import math
from typing import Any, Sequence

from parareason.grading.vote import AnswerGroup, majority_vote
from parareason.runtime.policy import PolicyContext, SampleOverrides, SampleView, Status


def mean_logprob(sample: SampleView) -> float | None:
    """Mean log-probability of the sample's main-thread tokens (None before any token)."""
    lps = sample.logprobs
    return (sum(lps) / len(lps)) if len(lps) else None


def answered(samples: Sequence[SampleView]) -> list[SampleView]:
    """Samples that finished normally with an extracted answer, in launch order. Pruned,
    cancelled, failed or limit-cut samples never vote: their text is partial, and a
    fallback extraction would read a stray intermediate number as an answer."""
    return [s for s in samples if s.status == Status.FINISHED and s.answer is not None]


def overrides(*, temperature: float | None = None, max_new_tokens: int | None = None,
              top_logprobs: int | None = None, seed: int | None = None) -> SampleOverrides | None:
    """A SampleOverrides, or None when nothing changes (keeps the request's settings)."""
    if temperature is None and max_new_tokens is None and top_logprobs is None and seed is None:
        return None
    return SampleOverrides(temperature=temperature, max_new_tokens=max_new_tokens,
                           top_logprobs=top_logprobs, seed=seed)


def launch_many(ctx: PolicyContext, n: int, *, prompt: str | None = None,
                ov: SampleOverrides | None = None, tag: str = "") -> list[SampleView]:
    """Launch up to `n` samples; stops at the first refusal (a limit was hit)."""
    launched: list[SampleView] = []
    for _ in range(n):
        s = ctx.launch(prompt=prompt, overrides=ov, tag=tag)
        if s is None:
            break
        launched.append(s)
    return launched


def vote(ctx: PolicyContext, samples: Sequence[SampleView],
         weights: Sequence[float] | None = None) -> tuple[str | None, list[AnswerGroup]]:
    """Majority (or weighted) vote over `samples`' answers, grouped by ctx.same_answer;
    ties go to the answer whose traces have the higher mean token logprob."""
    tie = [(mean_logprob(s) if mean_logprob(s) is not None else -math.inf) for s in samples]
    return majority_vote([s.answer for s in samples], weights=weights, same=ctx.same_answer,
                         tie_break=tie)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def vote_table(samples: Sequence[SampleView], groups: Sequence[AnswerGroup]) -> list[dict[str, Any]]:
    """JSON-friendly vote tallies for Decision.details, heaviest first."""
    rows = []
    for g in groups:
        lps = [mean_logprob(samples[i]) for i in g.members]
        lps = [x for x in lps if x is not None]
        rows.append({"answer": g.answer, "count": g.count, "weight": _finite(g.weight),
                     "mean_logprob": _finite(sum(lps) / len(lps)) if lps else None,
                     "samples": [samples[i].id for i in g.members]})
    rows.sort(key=lambda r: (-(r["weight"] or 0.0), -r["count"]))
    return rows

