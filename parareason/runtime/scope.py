"""Scope: the scheduler's implementation of `PolicyContext`, one per (nested) scope.

A scope owns the samples launched in it and the sub-scopes opened from it. Its
budget is carved out of its parent's remaining budget when it opens, and
`budget_left` is re-checked against every ancestor, so no nesting can exceed the
request's `tokens_per_request`.

Routing a nested scope to its policy: the documented pattern is
`child = ctx.scope(...); child_policy.start(child)`. The scope learns its policy
from that call: the first time the scope is used inside some policy's `start(ctx)`
with this scope as an argument, that policy is adopted (`_adopt_policy_from_caller`).
`scope(..., policy=...)` names it explicitly instead.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence

from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleOverrides, SampleView
from parareason.runtime.sample import Sample
from parareason.runtime.thread import CANCELLED

if TYPE_CHECKING:
    from parareason.runtime.request_run import RequestRun



class Scope(PolicyContext):
    def __init__(self, run: "RequestRun", parent: "Scope | None", *, prompt: str, budget: int | None,
                 tag: str, policy: Policy | None, scope_id: str) -> None:
        self.run = run
        self.parent = parent
        self.id = scope_id
        self.tag = tag
        self.policy = policy
        self._prompt = prompt
        self.budget = budget  # generated tokens this scope may spend in all (None = parent's)
        self.used = 0  # generated tokens of this scope's samples and sub-scopes
        self._samples: list[Sample] = []
        self.subscopes: list[Scope] = []
        self.closed = False  # finalized (or stopped) — no more launches
        self.stopped = False
        self.decision: Decision | None = None

    # -- PolicyContext: reading --------------------------------------------------------
    @property
    def prompt(self) -> str:
        self._adopt_policy_from_caller()
        return self._prompt

    @property
    def samples(self) -> Sequence[SampleView]:
        return self._samples

    @property
    def open_scopes(self) -> int:
        return sum(1 for s in self.subscopes if not s.closed)

    def tokens_used(self) -> int:
        return self.used

    def budget_left(self) -> int | None:
        left: int | None = None
        scope: Scope | None = self
        while scope is not None:
            if scope.budget is not None:
                mine = max(0, scope.budget - scope.used)
                left = mine if left is None else min(left, mine)
            scope = scope.parent
        return left

    def bounding_budget_name(self) -> str:
        """Which budget is tightest now: `tokens_per_request` (the root) or `scope_budget`."""
        best, name = None, "tokens_per_request"
        scope: Scope | None = self
        while scope is not None:
            if scope.budget is not None:
                mine = scope.budget - scope.used
                if best is None or mine < best:
                    best, name = mine, ("tokens_per_request" if scope.parent is None else "scope_budget")
            scope = scope.parent
        return name

    # -- PolicyContext: actions --------------------------------------------------------
    def launch(self, *, prompt: str | None = None, overrides: SampleOverrides | None = None,
               tag: str = "", protocol: str | None = None) -> SampleView | None:
        self._adopt_policy_from_caller()
        return self.run.launch_sample(self, prompt if prompt is not None else self._prompt,
                                      overrides or SampleOverrides(), tag, protocol)

    def abort(self, sample: SampleView, *, status: str = "pruned", reason: str = "") -> None:
        self._adopt_policy_from_caller()
        if not isinstance(sample, Sample) or sample.scope is not self:
            raise ValueError(f"sample {getattr(sample, 'id', sample)!r} does not belong to scope {self.id}")
        self.run.abort_sample(sample, status, reason or f"aborted by policy ({status})")

    def stop(self, reason: str) -> None:
        self._adopt_policy_from_caller()
        self.stopped = True
        self.run.trace.emit("scope_stop", scope=self.id, reason=reason)
        for sub in self.subscopes:
            if not sub.closed:
                sub.stop(reason)
        for s in self._samples:
            if s.live:
                self.run.abort_sample(s, CANCELLED, f"scope stopped: {reason}")

    def scope(self, *, prompt: str | None = None, budget: int | None = None, tag: str = "",
              policy: Policy | None = None) -> PolicyContext:
        # `policy=` is an optional, additive extension of the PolicyContext interface.
        self._adopt_policy_from_caller()
        left = self.budget_left()
        if budget is not None and left is not None:
            budget = min(budget, left)
        child = Scope(self.run, self, prompt=prompt if prompt is not None else self._prompt, budget=budget,
                      tag=tag, policy=policy, scope_id=f"{self.id}.{len(self.subscopes)}")
        if self.stopped or self.closed:
            child.stopped = True
        self.subscopes.append(child)
        self.run.trace.emit("scope_open", scope=child.id, parent=self.id, tag=tag, budget=budget)
        return child

    def record(self, kind: str, **data: Any) -> None:
        self._adopt_policy_from_caller()
        self.run.trace.emit("policy", scope=self.id, kind=kind, **data)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.run.tokenizer.decode(token_ids)

    def extract_answer(self, text: str) -> str | None:
        from parareason.grading import extract_answer
        return extract_answer(text)

    def same_answer(self, a: str | None, b: str | None) -> bool:
        from parareason.grading import answers_equal
        return answers_equal(a, b)

    # -- runtime side ----------------------------------------------------------------
    def add_sample(self, sample: Sample) -> None:
        self._samples.append(sample)

    def charge(self, n: int) -> None:
        scope: Scope | None = self
        while scope is not None:
            scope.used += n
            scope = scope.parent

    def _adopt_policy_from_caller(self) -> None:
        """Learn which policy drives this scope: the one whose `start` got it as argument."""
        if self.policy is not None:
            return
        frame = sys._getframe(2)
        depth = 0
        while frame is not None and depth < 12:
            owner = frame.f_locals.get("self")
            if (frame.f_code.co_name == "start" and isinstance(owner, Policy)
                    and any(v is self for v in frame.f_locals.values())):
                self.policy = owner
                return
            frame, depth = frame.f_back, depth + 1

    def __repr__(self) -> str:
        return f"Scope({self.id}, samples={len(self._samples)}, used={self.used}, budget={self.budget})"
