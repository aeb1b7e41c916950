"""Scope: the scheduler's implementation of `PolicyContext`, one per (nested) scope.

A scope owns the samples launched in it and the sub-scopes opened from it. Its
budget is carved out of its parent's remaining budget when it opens, and
`budget_left` is re-checked against every ancestor, so no nesting can exceed the
request's token cap.

A nested scope is driven by the policy named when it opens (`ctx.scope(policy=...)`);
when that policy is done the scope closes itself (`close_done_subscopes`, `close`):
finalize, abort leftovers, tell the parent's policy. The scope reaches its request
only through `ScopeHost` (implemented by `RequestRun`), as protocols reach it through
`ThreadOps`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleOverrides, SampleView
from parareason.runtime.status import LIVE_STATES, Status
from parareason.runtime.trace import Trace


class ScopeHost(ABC):
    """What a scope needs of its request: launching and aborting samples, the trace."""

    trace: Trace

    @abstractmethod
    def launch_sample(self, scope: "Scope", prompt: str, overrides: SampleOverrides, tag: str,
                      protocol_name: str | None) -> SampleView | None:
        """Start a sample in `scope` (None when a limit refuses it); adds it to the scope."""

    @abstractmethod
    def abort_sample(self, sample: SampleView, status: Status, reason: str) -> None:
        """End a live sample of this request now."""

    @abstractmethod
    def decode(self, token_ids: Sequence[int]) -> str: ...

    @property
    def model(self) -> str | None:
        """The request's model: its registry alias, else its tokenizer's name."""
        return None


class Scope(PolicyContext):
    def __init__(self, host: ScopeHost, parent: "Scope | None", *, prompt: str, budget: int | None,
                 tag: str, policy: Policy | None, scope_id: str, budget_name: str = "scope_budget") -> None:
        self.host = host
        self.parent = parent
        self.id = scope_id
        self.tag = tag
        self.policy = policy
        self._prompt = prompt
        self.budget = budget  # generated tokens this scope may spend in all (None = parent's)
        self.budget_name = budget_name  # the limit a thread cut by this budget reports
        self.used = 0  # generated tokens of this scope's samples and sub-scopes
        self._samples: list[SampleView] = []
        self.subscopes: list[Scope] = []
        self.closed = False  # finalized (or stopped) — no more launches
        self.stopped = False
        self.decision: Decision | None = None

    # -- PolicyContext: reading --------------------------------------------------------
    @property
    def prompt(self) -> str:
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
        """Which budget is tightest now: the root's (`tokens_per_request` or the derived
        `request_tokens_per_sample`) or a nested `scope_budget`."""
        best, name = None, "tokens_per_request"
        scope: Scope | None = self
        while scope is not None:
            if scope.budget is not None:
                mine = scope.budget - scope.used
                if best is None or mine < best:
                    best, name = mine, scope.budget_name
            scope = scope.parent
        return name

    # -- PolicyContext: actions --------------------------------------------------------
    def launch(self, *, prompt: str | None = None, overrides: SampleOverrides | None = None,
               tag: str = "", protocol: str | None = None) -> SampleView | None:
        return self.host.launch_sample(self, prompt if prompt is not None else self._prompt,
                                       overrides or SampleOverrides(), tag, protocol)

    def abort(self, sample: SampleView, *, status: Status | str = Status.PRUNED, reason: str = "") -> None:
        if not any(s is sample for s in self._samples):
            raise ValueError(f"sample {getattr(sample, 'id', sample)!r} does not belong to scope {self.id}")
        status = Status(status)
        if status in LIVE_STATES:
            raise ValueError(f"abort(status={status!r}): a sample ends finished, pruned, cancelled, failed or limit")
        self.host.abort_sample(sample, status, reason or f"aborted by policy ({status})")

    def stop(self, reason: str) -> None:
        self.stopped = True
        self.host.trace.emit("scope_stop", scope=self.id, reason=reason)
        for sub in self.subscopes:
            if not sub.closed:
                sub.stop(reason)
        for s in self._samples:
            if s.live:
                self.host.abort_sample(s, Status.CANCELLED, f"scope stopped: {reason}")

    def scope(self, *, policy: Policy, prompt: str | None = None, budget: int | None = None,
              tag: str = "") -> PolicyContext:
        if not isinstance(policy, Policy):
            raise TypeError(f"scope(policy=...) needs a Policy, got {type(policy).__name__}")
        left = self.budget_left()
        if budget is not None and left is not None:
            budget = min(budget, left)
        child = Scope(self.host, self, prompt=prompt if prompt is not None else self._prompt, budget=budget,
                      tag=tag, policy=policy, scope_id=f"{self.id}.{len(self.subscopes)}")
        if self.stopped or self.closed:
            child.stopped = True
        self.subscopes.append(child)
        self.host.trace.emit("scope_open", scope=child.id, parent=self.id, tag=tag, budget=budget)
        return child

    def record(self, kind: str, **data: Any) -> None:
        self.host.trace.emit("policy", scope=self.id, kind=kind, **data)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.host.decode(token_ids)

    @property
    def model(self) -> str | None:
        return self.host.model

    def extract_answer(self, text: str) -> str | None:
        from parareason.grading import extract_answer
        return extract_answer(text)

    def same_answer(self, a: str | None, b: str | None) -> bool:
        from parareason.grading import answers_equal
        return answers_equal(a, b)

    # -- runtime side ----------------------------------------------------------------
    def add_sample(self, sample: SampleView) -> None:
        self._samples.append(sample)

    def charge(self, n: int) -> None:
        scope: Scope | None = self
        while scope is not None:
            scope.used += n
            scope = scope.parent

    def close_done_subscopes(self) -> bool:
        """Close every nested scope whose policy is done (deepest first); True if one closed."""
        closed_any = False
        for sub in self.subscopes:
            if sub.closed:
                continue
            closed_any |= sub.close_done_subscopes()
            if sub.closed:
                continue
            live = any(s.live for s in sub.samples) or sub.open_scopes > 0
            done = sub.policy.is_done(sub) if sub.policy is not None else not live
            if done or (sub.stopped and not live):
                sub.close()
                closed_any = True
        return closed_any

    def close(self) -> Decision:
        """Finalize this nested scope (its open sub-scopes first), abort its leftovers
        and report the decision to the parent's policy."""
        for sub in self.subscopes:
            if not sub.closed:
                sub.close()
        decision = self.policy.finalize(self) if self.policy is not None else Decision(answer=None)
        self.decision = decision
        for s in self._samples:
            if s.live:
                self.host.abort_sample(s, Status.CANCELLED, f"scope {self.id} closed")
        self.closed = True
        self.host.trace.emit("scope_done", scope=self.id, answer=decision.answer, tokens=self.used)
        parent = self.parent
        if parent is not None and parent.policy is not None and not parent.closed:
            parent.policy.on_scope_done(parent, self, decision)
        return decision

    def __repr__(self) -> str:
        return f"Scope({self.id}, samples={len(self._samples)}, used={self.used}, budget={self.budget})"
