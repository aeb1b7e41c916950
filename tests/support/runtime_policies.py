"""Test-only policies and scripts for the runtime tests (the real policies live in
parareason/policies/). They act only through PolicyContext, like real ones."""
from __future__ import annotations

from collections import Counter

from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleOverrides


class LaunchN(Policy):
    """Launch n samples, majority-vote their answers."""

    name = "test-launch-n"

    def __init__(self, n: int = 1, *, overrides: SampleOverrides | None = None) -> None:
        self.n = n
        self.overrides = overrides
        self.token_events: list[tuple[str, int]] = []
        self.ended: list[str] = []

    @property
    def width(self) -> int:
        return self.n

    def start(self, ctx: PolicyContext) -> None:
        for i in range(self.n):
            ctx.launch(tag=f"n{i}", overrides=self.overrides)

    def on_tokens(self, ctx, sample, new_tokens):
        self.token_events.append((sample.id, new_tokens))

    def on_sample_end(self, ctx, sample):
        self.ended.append(sample.id)

    def finalize(self, ctx: PolicyContext) -> Decision:
        votes = Counter(s.answer for s in ctx.samples if s.answer is not None)
        answer = votes.most_common(1)[0][0] if votes else None
        return Decision(answer, {"votes": dict(votes), "samples": len(ctx.samples)})


class PruneAfter(LaunchN):
    """Prunes every sample except the first once it has `after` tokens."""

    name = "test-prune-after"

    def __init__(self, n: int, after: int) -> None:
        super().__init__(n)
        self.after = after

    def on_tokens(self, ctx, sample, new_tokens):
        if sample is not ctx.samples[0] and sample.live and sample.generated_tokens >= self.after:
            ctx.abort(sample, reason="test prune")


class StopAtFirstAnswer(LaunchN):
    name = "test-stop-first"

    def on_sample_end(self, ctx, sample):
        if sample.answer is not None:
            ctx.stop("got an answer")


class Nested(Policy):
    """Opens `k` nested scopes, each run by a LaunchN child policy; picks the first answer."""

    name = "test-nested"

    def __init__(self, k: int = 2, n: int = 2, budget: int | None = None) -> None:
        self.k, self.n, self.budget = k, n, budget
        self.children: list[LaunchN] = []
        self.decisions: list[Decision] = []

    @property
    def width(self) -> int:
        return self.n

    def start(self, ctx: PolicyContext) -> None:
        for i in range(self.k):
            child = LaunchN(self.n)
            self.children.append(child)
            child.start(ctx.scope(policy=child, tag=f"sub{i}", budget=self.budget))

    def on_scope_done(self, ctx, scope, decision):
        self.decisions.append(decision)

    def finalize(self, ctx):
        answers = [d.answer for d in self.decisions if d.answer is not None]
        return Decision(answers[0] if answers else None, {"scopes": len(self.decisions)})


class Raises(Policy):
    name = "test-raises"

    def start(self, ctx):
        ctx.launch()

    def on_tokens(self, ctx, sample, new_tokens):
        raise RuntimeError("policy bug")

    def finalize(self, ctx):
        return Decision(None)


class LaunchNothing(Policy):
    """Never launches yet claims it is not done: the scheduler must not hang."""

    name = "test-idle"

    def start(self, ctx):
        pass

    def is_done(self, ctx):
        return False

    def finalize(self, ctx):
        return Decision(None)
