"""Self-consistency (Wang et al. 2022): n independent samples, majority vote over
equivalent answers; ties go to the answer whose traces are more confident.

Composition: with `inner` set (e.g. "deepconf", "ffs"), the n samples are split into
`groups` nested scopes, each run by an inner policy, and the vote is over the inner
decisions (e.g. confidence early stop inside self-consistency).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parareason.policies.common import answered, launch_many, overrides, vote, vote_table
from parareason.runtime.policy import Decision, Policy, PolicyContext


@dataclass
class SelfConsistencyParams:
    n: int = 8
    temperature: float | None = None  # None: the request's temperature
    max_new_tokens: int | None = None
    inner: str | None = None  # run each group of samples under this policy (composition)
    groups: int = 2  # nested scopes when `inner` is set; n is split across them
    inner_params: dict[str, Any] = field(default_factory=dict)


class SelfConsistency(Policy):
    name = "self_consistency"

    def __init__(self, params: SelfConsistencyParams | None = None) -> None:
        self.params = params or SelfConsistencyParams()
        self._scope_answers: list[tuple[str, str | None]] = []

    def start(self, ctx: PolicyContext) -> None:
        p = self.params
        self._scope_answers = []
        if p.inner is None:
            launched = launch_many(ctx, p.n, ov=overrides(temperature=p.temperature,
                                                          max_new_tokens=p.max_new_tokens))
            ctx.record("sc_launch", n=len(launched))
            return
        from parareason.policies.build import make_policy  # lazy: build.py imports this module

        groups = max(1, min(p.groups, p.n))
        for g in range(groups):
            share = p.n // groups + (1 if g < p.n % groups else 0)
            inner_params = {"n": share, **p.inner_params}
            if p.max_new_tokens is not None:
                inner_params.setdefault("max_new_tokens", p.max_new_tokens)
            inner = make_policy(p.inner, **inner_params)
            inner.start(ctx.scope(policy=inner, tag=f"group-{g}"))
        ctx.record("sc_launch_groups", groups=groups, inner=p.inner)

    def on_scope_done(self, ctx: PolicyContext, scope: PolicyContext, decision: Decision) -> None:
        self._scope_answers.append((f"group-{len(self._scope_answers)}", decision.answer))
        ctx.record("sc_group_done", answer=decision.answer, tokens=scope.tokens_used())

    def finalize(self, ctx: PolicyContext) -> Decision:
        if self.params.inner is not None:
            return self._finalize_groups(ctx)
        done = answered(ctx.samples)
        answer, groups = vote(ctx, done)
        table = vote_table(done, groups)
        ctx.record("sc_vote", answer=answer, votes=[(r["answer"], r["count"]) for r in table])
        return Decision(answer, {"votes": table, "launched": len(ctx.samples), "answered": len(done)})

    def _finalize_groups(self, ctx: PolicyContext) -> Decision:
        from parareason.grading.vote import majority_vote

        answers = [a for _, a in self._scope_answers]
        answer, groups = majority_vote(answers, same=ctx.same_answer)
        votes = [{"answer": g.answer, "count": g.count} for g in groups]
        ctx.record("sc_vote", answer=answer, votes=[(v["answer"], v["count"]) for v in votes])
        return Decision(answer, {"votes": votes, "inner": self.params.inner,
                                 "group_answers": answers})
