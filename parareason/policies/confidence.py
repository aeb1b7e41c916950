"""DeepConf (Fu et al. 2025, "Deep Think with Confidence"), matched to
facebookresearch/deepconf `deepconf/wrapper.py` (`_deepthink_online`,
`_deepthink_offline`, `_perform_basic_voting`), `deepconf/utils.py`
(`filter_top_confidence`, `weighted_majority_vote`) and `deepconf/processors.py`
(`ConfPerReqLogitsProcessor`, the online stop). Confidence measures: confidence_window.py;
parameters, presets and DeepConf-low/-high: confidence_params.py.

offline: run n traces; keep those whose confidence (`measure`) is >= the
         (100 - keep_percent)-th percentile of the answered traces' confidences (the
         reference's percentile cut; ties at the cut are kept), vote weighted by that
         confidence.
online:  run `warmup` traces to completion; the stop threshold is the
         (100 - keep_percent)-th percentile of the lowest group confidence of *every*
         warm-up trace (answered or not, as `np.percentile(warmup min_confs)`). Then run
         the rest (at most `in_flight` live at a time; 0 = all at once, as the reference)
         and stop a trace the moment a full window's confidence falls below the threshold.
         Vote (`_perform_basic_voting`): a trace stopped early never votes; every other
         answered trace votes only if its lowest group confidence is >= the threshold
         (this drops warm-up traces below it, and short main traces whose mean is below
         it, as the reference marks them `gconf_threshold`); votes are weighted by
         confidence (lowest group by default, or `measure`).

Additions beyond the reference (each can be switched off):
* consensus (the paper's Algorithm 2, beta >= tau): stop once the leader holds
  >= `consensus` of the voting weight and at least two votes (1.0 = off);
* `stop_when_decided`: stop once the remaining traces cannot overturn the leader even if
  each carried the largest vote weight seen so far (exact for equal weights; with
  unequal weights a heuristic, since a weight has no upper bound);
* `give_up_after` (0 = off): stop once that many traces ended and no answer repeats.
Where the backend returns fewer alternatives than `top_logprobs` asks for, the confidence
uses what it returned and `details["top_logprobs"]` says so.
"""
from __future__ import annotations

from parareason.policies.common import answered, launch_many, overrides, vote, vote_table
from parareason.policies.confidence_params import PRESETS, VARIANTS, DeepConfParams
from parareason.policies.confidence_window import ConfidenceTracker, percentile, top_percent_mask
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView, Status

__all__ = ["DeepConf", "DeepConfParams", "PRESETS", "VARIANTS", "vote_is_decided"]


def vote_is_decided(weights: list[float], remaining: int, per_vote: float = 1.0) -> bool:
    """True when `remaining` more votes of at most `per_vote` weight each cannot change
    the winner (with unit weights: the leader's count beats runner-up + remaining)."""
    if not weights:
        return False
    top = sorted(weights, reverse=True)
    runner_up = top[1] if len(top) > 1 else 0.0
    return top[0] > runner_up + remaining * per_vote


class DeepConf(Policy):
    name = "deepconf"

    def __init__(self, params: DeepConfParams | None = None) -> None:
        self.params = params or DeepConfParams()
        self.cfg = self.params.resolved()  # raises on a bad name or contradiction
        self._trackers: dict[str, ConfidenceTracker] = {}
        self._threshold: float | None = None
        self._phase = "warmup"
        self._pruned: list[dict] = []
        self._decided = False
        self._launched = 0

    # -- helpers -------------------------------------------------------------------
    def _ov(self):
        c = self.cfg
        return overrides(temperature=c.temperature, max_new_tokens=c.max_new_tokens,
                         top_logprobs=c.top_logprobs if c.top_logprobs > 0 else None)

    def _track(self, sample: SampleView) -> ConfidenceTracker:
        t = self._trackers.get(sample.id)
        if t is None:
            t = self._trackers[sample.id] = ConfidenceTracker(self.cfg.window)
        t.update(sample.logprobs, sample.top_logprobs)
        return t

    def _confidence(self, s: SampleView, measure: str | None = None) -> float:
        t = self._trackers.get(s.id)
        return t.measure(measure or self.cfg.measure) if t is not None else 0.0

    def _weight(self, s: SampleView) -> float:
        t = self._trackers.get(s.id)
        return t.weight_of(self._confidence(s)) if t is not None else 0.0

    def _voters(self, ctx: PolicyContext) -> list[SampleView]:
        """Online voters: answered, not stopped early, lowest group >= the threshold."""
        done = [s for s in answered(ctx.samples) if s.status == Status.FINISHED]
        if self._threshold is None:
            return done
        return [s for s in done if self._confidence(s, "lowest") >= self._threshold]

    # -- hooks ---------------------------------------------------------------------
    def start(self, ctx: PolicyContext) -> None:
        c = self.cfg
        self._trackers, self._threshold, self._pruned, self._decided = {}, None, [], False
        if c.mode == "offline":
            self._phase = "main"
            self._launched = len(launch_many(ctx, c.n, ov=self._ov(), tag="main"))
        else:
            self._phase = "warmup"
            self._launched = len(launch_many(ctx, max(1, min(c.warmup, c.n)), ov=self._ov(), tag="warmup"))
        ctx.record("deepconf_start", **self.params.settings())

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
        if self.cfg.mode == "offline":
            return
        if self._phase == "warmup":
            if not any(s.live for s in ctx.samples):
                self._calibrate_and_launch(ctx)
            return
        self._check_decided(ctx)
        if not self._decided:
            self._top_up(ctx)

    def _calibrate_and_launch(self, ctx: PolicyContext) -> None:
        warm = [s for s in ctx.samples if s.tag == "warmup"]
        confs = [self._confidence(s, "lowest") for s in warm]  # every warm-up trace, as the reference
        self._threshold = percentile(confs, 100.0 - self.cfg.keep_percent) if confs else None
        self._phase = "main"
        ctx.record("deepconf_calibrated", threshold=self._threshold, warmup_confidences=confs)
        self._check_decided(ctx)
        if not self._decided:
            self._top_up(ctx)

    def _top_up(self, ctx: PolicyContext) -> None:
        """Keep up to `in_flight` main traces live until n have been launched."""
        c = self.cfg
        live = sum(1 for s in ctx.samples if s.live)
        room = c.n - self._launched if c.in_flight <= 0 else min(c.n - self._launched, c.in_flight - live)
        if room > 0:
            self._launched += len(launch_many(ctx, room, ov=self._ov(), tag="main"))

    def _check_decided(self, ctx: PolicyContext) -> None:
        if self._decided:
            return
        c = self.cfg
        voters = self._voters(ctx)
        weights = [self._weight(s) for s in voters]
        _, groups = vote(ctx, voters, weights=weights)
        totals = [g.weight for g in groups]
        top_count = max((g.count for g in groups), default=0)
        remaining = sum(1 for s in ctx.samples if s.live) + (c.n - self._launched)
        total = sum(totals)
        share = max(totals) / total if total > 0 else 0.0
        ended = sum(1 for s in ctx.samples if not s.live)
        if remaining and c.stop_when_decided and vote_is_decided(totals, remaining, max(weights, default=1.0)):
            reason = "vote decided"
        elif remaining and c.consensus < 1.0 and share >= c.consensus and top_count >= 2:
            reason = f"consensus {share:.2f} >= {c.consensus}"
        elif remaining and 0 < c.give_up_after <= ended and top_count < 2:
            reason = f"give up: {ended} traces ended, no answer repeated"
        else:
            return
        self._decided = True
        ctx.record("deepconf_decided", votes=[(g.answer, g.count, g.weight) for g in groups],
                   remaining=remaining, reason=reason)
        ctx.stop(f"deepconf: {reason}")

    def is_done(self, ctx: PolicyContext) -> bool:
        # Calibration launches the main traces inside on_sample_end, so "nothing live"
        # really means done (or that a limit refused every launch).
        return self._decided or super().is_done(ctx)

    def _alternatives_note(self) -> dict:
        asked = self.cfg.top_logprobs
        got = [t.fewest_alternatives for t in self._trackers.values() if t.fewest_alternatives is not None]
        info: dict = {"requested": asked, "fewest_returned": min(got) if got else 0}
        if asked > 0 and info["fewest_returned"] < asked:
            info["note"] = (f"the backend returned {info['fewest_returned']} alternatives where {asked} were "
                            "asked; confidences use what it returned"
                            + ("" if got else " (none: the sampled token's logprob stands in)"))
        return info

    def finalize(self, ctx: PolicyContext) -> Decision:
        c = self.cfg
        done = [s for s in answered(ctx.samples) if s.status == Status.FINISHED]
        details: dict = {"mode": c.mode, "measure": c.measure, "threshold": self._threshold,
                         "pruned": self._pruned, "stopped_early": self._decided,
                         "settings": self.params.settings(), "top_logprobs": self._alternatives_note(),
                         "trace_confidence": {s.id: round(self._confidence(s), 6) for s in done}}
        if c.mode == "offline":
            mask = top_percent_mask([self._confidence(s) for s in done], c.keep_percent)
            voters = [s for s, keep in zip(done, mask) if keep]
            details["kept"] = [s.id for s in voters]
        else:
            voters = self._voters(ctx)
            details["voters"] = [s.id for s in voters]
        answer, groups = vote(ctx, voters, weights=[self._weight(s) for s in voters])
        details["votes"] = vote_table(voters, groups)
        ctx.record("deepconf_vote", answer=answer)
        return Decision(answer, details)
