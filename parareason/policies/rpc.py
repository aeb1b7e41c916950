"""RPC (Zhou et al. 2025, "Bridging Internal Probability and Self-Consistency for LLM
Reasoning"): Perplexity Consistency + Reasoning Pruning.

Perplexity consistency: an answer's score is the sum, over the distinct reasoning
paths that reach it, of the path's probability under the model. We use the
length-normalised probability exp(mean token logprob) so long traces are not
crushed; summing over paths keeps self-consistency's frequency signal, and the
probability weights let a few confident paths beat many unlikely ones.

Reasoning pruning: low-probability paths add noise to the vote, so a live sample is
aborted once it has `prune_after` tokens and its running mean logprob has fallen more
than `prune_margin` nats below the median of its peers' running means (at least
`keep_min` samples are never pruned). The paper fits a Weibull mixture offline; this
online version also saves the pruned samples' remaining tokens.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from parareason.policies.common import answered, launch_many, mean_logprob, overrides, vote, vote_table
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView, Status


@dataclass
class RPCParams:
    n: int = 8
    prune_after: int = 32  # tokens before a sample can be judged
    prune_margin: float = 0.5  # nats of mean logprob below the peers' median
    keep_min: int = 2  # never prune below this many unpruned samples
    temperature: float | None = None
    max_new_tokens: int | None = None


def path_weight(mean_lp: float | None) -> float:
    """Length-normalised path probability, exp(mean token logprob), in (0, 1]."""
    return math.exp(mean_lp) if mean_lp is not None else 0.0


class RPC(Policy):
    name = "rpc"

    def __init__(self, params: RPCParams | None = None) -> None:
        self.params = params or RPCParams()
        self._pruned: list[dict] = []
        self._running: dict[str, tuple[int, float]] = {}  # sample id -> (tokens seen, logprob sum)

    def _running_mean(self, sample: SampleView) -> float | None:
        """Mean logprob, updated incrementally (on_tokens runs for every sample every step)."""
        seen, total = self._running.get(sample.id, (0, 0.0))
        lps = sample.logprobs
        if len(lps) > seen:
            total += sum(lps[seen:])
            seen = len(lps)
            self._running[sample.id] = (seen, total)
        return total / seen if seen else None

    def start(self, ctx: PolicyContext) -> None:
        p = self.params
        self._pruned, self._running = [], {}
        launched = launch_many(ctx, p.n, ov=overrides(temperature=p.temperature,
                                                      max_new_tokens=p.max_new_tokens))
        ctx.record("rpc_launch", n=len(launched))

    def on_tokens(self, ctx: PolicyContext, sample: SampleView, new_tokens: int) -> None:
        p = self.params
        mine = self._running_mean(sample)
        if not sample.live or mine is None or len(sample.logprobs) < p.prune_after:
            return
        unpruned = sum(1 for s in ctx.samples if s.status != Status.PRUNED)
        if unpruned <= p.keep_min:
            return
        peers = [self._running_mean(s) for s in ctx.samples
                 if s.id != sample.id and s.status != Status.PRUNED and len(s.logprobs) >= p.prune_after]
        peers = [x for x in peers if x is not None]
        if not peers:
            return
        median = statistics.median(peers)
        if mine < median - p.prune_margin:
            self._pruned.append({"sample": sample.id, "tokens": sample.generated_tokens,
                                 "mean_logprob": round(mine, 6), "peer_median": round(median, 6)})
            ctx.record("rpc_prune", sample=sample.id, mean_logprob=mine, peer_median=median)
            ctx.abort(sample, status=Status.PRUNED, reason="rpc: low path probability")

    def finalize(self, ctx: PolicyContext) -> Decision:
        done = [s for s in answered(ctx.samples) if s.status == Status.FINISHED]
        seen: set[tuple[int, ...]] = set()
        paths: list[SampleView] = []
        for s in done:  # a path counts once however often it was sampled
            key = tuple(s.token_ids)
            if key not in seen:
                seen.add(key)
                paths.append(s)
        weights = [path_weight(mean_logprob(s)) for s in paths]
        answer, groups = vote(ctx, paths, weights=weights)
        ctx.record("rpc_vote", answer=answer, scores=[(g.answer, g.weight) for g in groups])
        return Decision(answer, {"votes": vote_table(paths, groups), "pruned": self._pruned,
                                 "distinct_paths": len(paths), "answered": len(done)})
