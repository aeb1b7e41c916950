"""Best-of-Majority (Di et al. 2025, "Best-of-Majority: Minimax-Optimal Strategy for
Pass@k Inference Scaling") for pass@k: sample N = n responses, keep only answers whose
frequency count / N is at least `min_fraction` (the paper's frequency filter, relative
to all N samples drawn, answered or not: the "majority" part, which stops a reward model
from being gamed by rare answers), then return the k best of them by reward (the
"best-of" part), one response per distinct answer.

The reward is `reward(prompt, sample) -> float` (a reward model, a verifier, ...). When
none is given, the sample's mean token logprob stands in for it: a stand-in, not the
paper's reward model, so with the default BoM ranks frequent answers by the policy
model's own confidence. A reward hook that raises ranks that sample last.

Deviation: when no answer reaches the frequency threshold the paper's candidate set is
empty; we then keep every answer (a request always gets an answer) and say so in
`details["filter_fallback"]`. Decision.answer is the top candidate;
Decision.details["candidates"] lists all k (pass@k counts a hit among them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from parareason.policies.common import answered, launch_many, mean_logprob, overrides, vote, vote_table
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView


@dataclass
class BoMParams:
    n: int = 8
    k: int = 1
    min_fraction: float = 0.2  # an answer needs count / N >= this (N = samples drawn)
    reward: Callable[[str, SampleView], float] | None = None  # None: mean token logprob (a stand-in)
    temperature: float | None = None
    max_new_tokens: int | None = None


class BestOfMajority(Policy):
    name = "bom"

    def __init__(self, params: BoMParams | None = None) -> None:
        self.params = params or BoMParams()

    def start(self, ctx: PolicyContext) -> None:
        p = self.params
        launched = launch_many(ctx, p.n, ov=overrides(temperature=p.temperature,
                                                      max_new_tokens=p.max_new_tokens))
        ctx.record("bom_launch", n=len(launched), k=p.k, min_fraction=p.min_fraction)

    def _score(self, ctx: PolicyContext, s: SampleView) -> float:
        if self.params.reward is not None:
            try:
                return float(self.params.reward(ctx.prompt, s))
            except Exception:  # noqa: BLE001 - a failing reward hook ranks the sample last
                return -math.inf
        lp = mean_logprob(s)
        return lp if lp is not None else -math.inf

    def finalize(self, ctx: PolicyContext) -> Decision:
        p = self.params
        done = answered(ctx.samples)
        _, groups = vote(ctx, done)
        if not groups:
            return Decision(None, {"candidates": [], "votes": []})
        drawn = len(ctx.samples)  # the paper's N: every sample drawn, answered or not
        need = p.min_fraction * drawn
        frequent = [g for g in groups if g.count >= need]
        fallback = not frequent
        frequent = frequent or groups  # never filter everything (see the module docstring)
        scored = []
        for g in frequent:
            best_i = max(g.members, key=lambda i: self._score(ctx, done[i]))
            score = self._score(ctx, done[best_i])
            scored.append({"answer": g.answer, "count": g.count, "frequency": g.count / drawn,
                           "score": score if math.isfinite(score) else None,
                           "sample": done[best_i].id})
        scored.sort(key=lambda c: (c["score"] if c["score"] is not None else -math.inf, c["count"]),
                    reverse=True)
        candidates = scored[:max(1, p.k)]
        ctx.record("bom_select", candidates=[(c["answer"], c["score"]) for c in candidates],
                   filtered_out=len(groups) - len(frequent))
        return Decision(candidates[0]["answer"], {
            "candidates": candidates, "votes": vote_table(done, groups),
            "min_count": need, "drawn": drawn, "filtered_out": len(groups) - len(frequent),
            "filter_fallback": fallback, "score": "reward" if p.reward is not None else "mean_logprob"})
