"""Policy hooks after a step: the nested-scope protocol of runtime/policy.py.

`settle` delivers `on_tokens` and `on_sample_end` to the policy of each sample's scope,
then finalizes nested scopes whose policy is done (deepest first) and reports them to
the parent's `on_scope_done`; hooks may launch, abort or open scopes again, so it loops
until nothing is left to deliver.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from parareason.runtime.policy import Decision
from parareason.runtime.scope import Scope
from parareason.runtime.thread import CANCELLED

if TYPE_CHECKING:
    from parareason.runtime.request_run import RequestRun


class PolicyFailure(RuntimeError):
    """Policy hooks kept triggering each other without end."""


def settle(run: "RequestRun") -> None:
    # Hooks may launch or abort samples, and open or finish scopes: loop until quiet.
    for _ in range(10_000):
        if run.grew:
            grew, run.grew = run.grew, {}
            for sample, n in grew.items():
                if sample.scope.policy is not None and not sample.scope.closed:
                    sample.scope.policy.on_tokens(sample.scope, sample, n)
            continue
        if run.ended_samples:
            ended, run.ended_samples = run.ended_samples, []
            for sample in ended:
                if sample.scope.policy is not None and not sample.scope.closed:
                    sample.scope.policy.on_sample_end(sample.scope, sample)
            continue
        if close_done_scopes(run, run.root):
            continue
        return
    raise PolicyFailure("policy hooks did not settle")


def close_done_scopes(run: "RequestRun", scope: Scope) -> bool:
    """Finalize every finished nested scope (deepest first); True if one closed."""
    closed_any = False
    for sub in scope.subscopes:
        if sub.closed:
            continue
        closed_any |= close_done_scopes(run, sub)
        if sub.closed:
            continue
        live = any(s.live for s in sub.samples) or sub.open_scopes > 0
        done = sub.policy.is_done(sub) if sub.policy is not None else not live
        if done or (sub.stopped and not live):
            close_scope(run, sub)
            closed_any = True
    return closed_any


def close_scope(run: "RequestRun", scope: Scope) -> Decision:
    for sub in scope.subscopes:
        if not sub.closed:
            close_scope(run, sub)
    decision = scope.policy.finalize(scope) if scope.policy is not None else Decision(answer=None)
    scope.decision = decision
    for s in scope.samples:
        if s.live:
            run.abort_sample(s, CANCELLED, f"scope {scope.id} closed")
    scope.closed = True
    run.trace.emit("scope_done", scope=scope.id, answer=decision.answer, tokens=scope.used)
    parent = scope.parent
    if parent is not None and parent.policy is not None and not parent.closed:
        parent.policy.on_scope_done(parent, scope, decision)
    return decision
