"""RPC (Zhou et al. 2025, "Bridging Internal Probability and Self-Consistency for LLM
Reasoning"): Perplexity Consistency + Reasoning Pruning.

Perplexity consistency: an answer's score is the sum, over the distinct reasoning
paths that reach it, of the path's probability under the model. We use the
length-normalised probability exp(mean token logprob) so long traces are not
crushed; summing over paths keeps self-consistency's frequency signal, and the
probability weights let a few confident paths beat many unlikely ones.

Reasoning pruning (`pruning`):
* ``weibull`` (default, the paper's; rpc_weibull.py, matched to WNJXYK/RPC
  `compute_rpc.py` `wpc_evaluator`): after all samples end, fit a two-component Weibull
  mixture to the answered samples' probabilities and drop, before the vote, every path
  that is likelier in the low component and below the mean probability;
* ``online`` (parareason's own, the previous default): a live sample is aborted once it
  has `prune_after` tokens and its running mean logprob has fallen more than
  `prune_margin` nats below the median of its peers' running means (at least `keep_min`
  samples are never pruned); it also saves the pruned samples' remaining tokens;
* ``both``, or ``none`` (plain perplexity consistency).

The vote matches `wpc_evaluator`: a path's probability counts once per distinct path,
the mean for the pruning rule is over every answered sample (duplicates included).
Only finished samples with an answer vote (the reference counts every sample's parsed
answer; parareason never reads an answer from a cut trace).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from parareason.policies.common import answered, launch_many, mean_logprob, overrides, vote, vote_table
from parareason.policies.rpc_weibull import reasoning_prune_mask
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView, Status


@dataclass
class RPCParams:
    n: int = 8
    pruning: str = "weibull"  # weibull (the paper's) | online | both | none
    prune_after: int = 32  # online: tokens before a sample can be judged
    prune_margin: float = 0.5  # online: nats of mean logprob below the peers' median
    keep_min: int = 2  # online: never prune below this many unpruned samples
    temperature: float | None = None
    max_new_tokens: int | None = None


PRUNING = ("weibull", "online", "both", "none")


def path_weight(mean_lp: float | None) -> float:
    """Length-normalised path probability, exp(mean token logprob), in (0, 1]."""
    return math.exp(mean_lp) if mean_lp is not None else 0.0


class RPC(Policy):
    name = "rpc"

    def __init__(self, params: RPCParams | None = None) -> None:
        self.params = params or RPCParams()
        if self.params.pruning not in PRUNING:
            raise ValueError(f"rpc pruning must be one of {', '.join(PRUNING)}, not {self.params.pruning!r}")
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
        if p.pruning not in ("online", "both"):
            return
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
        dropped: list[str] = []
        mixture = None
        if self.params.pruning in ("weibull", "both") and done:
            mask, mixture = reasoning_prune_mask([path_weight(mean_logprob(s)) for s in done])
            dropped = [s.id for s, drop in zip(done, mask) if drop]
            done = [s for s, drop in zip(done, mask) if not drop]
            ctx.record("rpc_reasoning_pruning", dropped=dropped,
                       mixture=None if mixture is None else vars(mixture))
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
                                 "reasoning_pruned": dropped, "pruning": self.params.pruning,
                                 "weibull": None if mixture is None else vars(mixture),
                                 "distinct_paths": len(paths), "answered": len(done) + len(dropped)})
