"""First-Finish Search (Agarwal et al. 2025, "First Finish Search: Efficient Test-Time
Scaling in Large Language Models"): launch n samples, take the first k that finish
(k=1: the first one's answer; k>1: a vote over them) and abort the rest at once.
Shorter traces are more often correct, and the abort saves tokens.

Two rules for "finish":
* default (`strict=False`, parareason's): the first k samples that end normally *with an
  extracted answer*; a trace that stops without stating one is passed over, so the
  request still gets an answer when an early finisher rambled;
* `strict=True`, the paper's: the first k samples that end normally (end of sequence),
  answer or not; if the first finisher states no answer, the request's answer is None.
A sample cut by its token cap, pruned or failed has not finished under either rule.
"""
from __future__ import annotations

from dataclasses import dataclass

from parareason.policies.common import launch_many, overrides, vote, vote_table
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView, Status


@dataclass
class FFSParams:
    n: int = 8
    k: int = 1  # finished samples to wait for
    strict: bool = False  # True: the paper's rule, the first to end wins even without an answer
    temperature: float | None = None
    max_new_tokens: int | None = None


def estimate_tokens_saved(finished_lengths: list[int], aborted_lengths: list[int]) -> int:
    """Tokens the abort saved, under a memoryless (geometric) length model fitted to the
    finished samples: each aborted sample is expected to need as many more tokens as
    the mean finished length, whatever it had produced already (with batched decode
    the aborted samples have usually produced as much as the finishers, so "catch up
    to the finishers' length" would always say 0). The first finishers are the
    shortest samples, so this mean, and the estimate, err low."""
    if not finished_lengths or not aborted_lengths:
        return 0
    mean_len = sum(finished_lengths) / len(finished_lengths)
    return int(round(mean_len * len(aborted_lengths)))


class FirstFinishSearch(Policy):
    name = "ffs"

    def __init__(self, params: FFSParams | None = None) -> None:
        self.params = params or FFSParams()
        self._first: list[SampleView] = []
        self._aborted: list[tuple[str, int]] = []
        self._stopped = False

    def start(self, ctx: PolicyContext) -> None:
        p = self.params
        self._first, self._aborted, self._stopped = [], [], False
        launched = launch_many(ctx, p.n, ov=overrides(temperature=p.temperature,
                                                      max_new_tokens=p.max_new_tokens))
        ctx.record("ffs_launch", n=len(launched), k=p.k)

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        if self._stopped or sample.status != Status.FINISHED:
            return
        if sample.answer is None and not self.params.strict:
            return
        self._first.append(sample)
        if len(self._first) >= self.params.k:
            self._aborted = [(s.id, s.generated_tokens) for s in ctx.samples if s.live]
            self._stopped = True
            ctx.record("ffs_stop", winners=[s.id for s in self._first],
                       aborted=[sid for sid, _ in self._aborted])
            ctx.stop(f"ffs: first {self.params.k} finished")

    def is_done(self, ctx: PolicyContext) -> bool:
        return self._stopped or super().is_done(ctx)

    def finalize(self, ctx: PolicyContext) -> Decision:
        answer, groups = vote(ctx, self._first)
        saved = estimate_tokens_saved([s.generated_tokens for s in self._first],
                                      [n for _, n in self._aborted])
        return Decision(answer, {
            "first_finished": [s.id for s in self._first],
            "rule": "first to end" if self.params.strict else "first to end with an answer",
            "votes": vote_table(self._first, groups),
            "aborted": [sid for sid, _ in self._aborted],
            "tokens_saved_estimate": saved,
            "aborted_tokens": sum(n for _, n in self._aborted),  # spent before the abort
        })
