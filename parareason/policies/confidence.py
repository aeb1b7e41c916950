"""DeepConf-style confidence filtering and early stopping (Fu et al. 2025, "Deep Think
with Confidence"). See confidence_window.py for the confidence measures.

offline: run n traces, keep the top `keep_percent`% by trace confidence, vote weighted
         by confidence.
online:  run `warmup` traces to completion, set the stop threshold to the
         (100 - keep_percent)-th percentile of their lowest group confidences, then run
         the rest with at most `in_flight` main traces live at a time (adaptive
         sampling, as the paper's Algorithm 2) and prune a trace the moment its window
         confidence falls below the threshold. The request stops as soon as
         * consensus: the leading answer holds >= `consensus` of the finished votes
           and at least two of them (the paper's beta >= tau; 1.0 turns it off),
           warm-up votes included, or
         * the vote is decided: the leader's count exceeds the runner-up's plus every
           trace still running or not yet launched (exact, so votes are unweighted), or
         * give up (off by default): `give_up_after` traces have ended and no answer has
           two votes. The model cannot settle the question; more traces rarely build a
           majority, so the budget is better kept (the answer is still the best vote).
         An easy question whose warm-up traces all agree therefore costs `warmup`
         traces, not n; disagreement buys more traces up to n.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from parareason.policies.common import answered, launch_many, overrides, vote, vote_table
from parareason.policies.confidence_window import ConfidenceTracker, percentile
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView, Status


@dataclass
class DeepConfParams:
    n: int = 16
    mode: str = "online"  # online | offline
    window: int = 64  # tokens per group (the paper uses 2048 for long traces)
    top_logprobs: int = 5
    keep_percent: float = 90.0  # eta: 90 = DeepConf-high (conservative, default), 10 = DeepConf-low
    warmup: int = 4  # online calibration traces
    consensus: float = 0.95  # online: stop once the leader holds this share of votes (1.0 = off)
    in_flight: int = 4  # online: main traces live at once after warm-up (0 = all at once)
    give_up_after: int = 0  # online: stop once this many traces ended with no answer repeated (0 = off)
    temperature: float | None = None
    max_new_tokens: int | None = None


def vote_is_decided(counts: list[int], remaining: int) -> bool:
    """True when no outcome of the `remaining` votes can change the winner."""
    if not counts:
        return False
    top = sorted(counts, reverse=True)
    runner_up = top[1] if len(top) > 1 else 0
    return top[0] > runner_up + remaining


class DeepConf(Policy):
    name = "deepconf"

    def __init__(self, params: DeepConfParams | None = None) -> None:
        self.params = params or DeepConfParams()
        if self.params.mode not in ("online", "offline"):
            raise ValueError(f"deepconf mode must be online or offline, not {self.params.mode!r}")
        self._trackers: dict[str, ConfidenceTracker] = {}
        self._threshold: float | None = None
        self._phase = "warmup"
        self._pruned: list[dict] = []
        self._decided = False
        self._launched = 0
        if not 0.0 < self.params.consensus <= 1.0:
            raise ValueError(f"deepconf consensus must be in (0, 1], not {self.params.consensus}")

    # -- helpers -------------------------------------------------------------------
    def _ov(self):
        p = self.params
        return overrides(temperature=p.temperature, max_new_tokens=p.max_new_tokens,
                         top_logprobs=p.top_logprobs if p.top_logprobs > 0 else None)

    def _track(self, sample: SampleView) -> ConfidenceTracker:
        t = self._trackers.get(sample.id)
        if t is None:
            t = self._trackers[sample.id] = ConfidenceTracker(self.params.window)
        t.update(sample.logprobs, sample.top_logprobs)
        return t

    # -- hooks ---------------------------------------------------------------------
    def start(self, ctx: PolicyContext) -> None:
        p = self.params
        self._trackers, self._threshold, self._pruned, self._decided = {}, None, [], False
        if p.mode == "offline":
            self._phase = "main"
            self._launched = len(launch_many(ctx, p.n, ov=self._ov(), tag="main"))
        else:
            self._phase = "warmup"
            self._launched = len(launch_many(ctx, max(1, min(p.warmup, p.n)), ov=self._ov(), tag="warmup"))
        ctx.record("deepconf_start", mode=p.mode, n=p.n, warmup=p.warmup, window=p.window,
                   consensus=p.consensus, in_flight=p.in_flight)

    def on_tokens(self, ctx: PolicyContext, sample: SampleView, new_tokens: int) -> None:
        t = self._track(sample)
        if (self._phase != "main" or self._threshold is None or sample.tag != "main"
                or not sample.live or not t.full):
            return
        conf = t.current_group
        if conf is not None and conf < self._threshold:
            self._pruned.append({"sample": sample.id, "tokens": sample.generated_tokens,
                                 "confidence": round(conf, 6)})
            ctx.record("deepconf_prune", sample=sample.id, confidence=conf,
                       threshold=self._threshold, tokens=sample.generated_tokens)
            ctx.abort(sample, status=Status.PRUNED, reason="deepconf: window confidence below threshold")

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        self._track(sample)
        if self.params.mode == "offline":
            return
        if self._phase == "warmup":
            if not any(s.live for s in ctx.samples):
                self._calibrate_and_launch(ctx)
            return
        self._check_decided(ctx)
        if not self._decided:
            self._top_up(ctx)

    def _calibrate_and_launch(self, ctx: PolicyContext) -> None:
        p = self.params
        warm = [s for s in ctx.samples if s.tag == "warmup"]
        confs = [self._trackers[s.id].trace_confidence for s in warm
                 if s.answer is not None and s.id in self._trackers]
        confs = [c for c in confs if c is not None]
        self._threshold = percentile(confs, 100.0 - p.keep_percent) if confs else None
        self._phase = "main"
        ctx.record("deepconf_calibrated", threshold=self._threshold, warmup_confidences=confs)
        self._check_decided(ctx)
        if not self._decided:
            self._top_up(ctx)

    def _top_up(self, ctx: PolicyContext) -> None:
        """Keep up to `in_flight` main traces live until n have been launched."""
        p = self.params
        live = sum(1 for s in ctx.samples if s.live)
        room = p.n - self._launched if p.in_flight <= 0 else min(p.n - self._launched, p.in_flight - live)
        if room > 0:
            self._launched += len(launch_many(ctx, room, ov=self._ov(), tag="main"))

    def _check_decided(self, ctx: PolicyContext) -> None:
        if self._decided:
            return
        p = self.params
        voters = [s for s in answered(ctx.samples) if s.status == Status.FINISHED]
        _, groups = vote(ctx, voters)
        counts = [g.count for g in groups]
        remaining = sum(1 for s in ctx.samples if s.live) + (p.n - self._launched)
        share = max(counts) / len(voters) if voters else 0.0
        ended = sum(1 for s in ctx.samples if not s.live)
        if remaining and vote_is_decided(counts, remaining):
            reason = "vote decided"
        elif remaining and p.consensus < 1.0 and share >= p.consensus and max(counts) >= 2:
            reason = f"consensus {share:.2f} >= {p.consensus}"
        elif remaining and 0 < p.give_up_after <= ended and max(counts, default=0) < 2:
            reason = f"give up: {ended} traces ended, no answer repeated"
        else:
            return
        self._decided = True
        ctx.record("deepconf_decided", votes=[(g.answer, g.count) for g in groups],
                   remaining=remaining, reason=reason)
        ctx.stop(f"deepconf: {reason}")

    def is_done(self, ctx: PolicyContext) -> bool:
        # Calibration launches the main traces inside on_sample_end, so "nothing live"
        # really means done (or that a limit refused every launch).
        return self._decided or super().is_done(ctx)

    def finalize(self, ctx: PolicyContext) -> Decision:
        p = self.params
        voters = [s for s in answered(ctx.samples) if s.status == Status.FINISHED]
        confs = {s.id: self._trackers[s.id].trace_confidence if s.id in self._trackers else None
                 for s in voters}
        details: dict = {"mode": p.mode, "threshold": self._threshold, "pruned": self._pruned,
                         "stopped_early": self._decided,
                         "trace_confidence": {k: (round(v, 6) if v is not None else None)
                                              for k, v in confs.items()}}
        if p.mode == "offline":
            ranked = sorted(voters, key=lambda s: confs[s.id] if confs[s.id] is not None else -math.inf,
                            reverse=True)
            keep = ranked[:max(1, math.ceil(len(ranked) * p.keep_percent / 100.0))] if ranked else []
            weights = [self._trackers[s.id].vote_weight() if s.id in self._trackers else 0.0 for s in keep]
            answer, groups = vote(ctx, keep, weights=weights)
            details.update(kept=[s.id for s in keep], votes=vote_table(keep, groups))
        else:
            answer, groups = vote(ctx, voters)
            details.update(votes=vote_table(voters, groups))
        ctx.record("deepconf_vote", answer=answer)
        return Decision(answer, details)
