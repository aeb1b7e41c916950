"""Scopes, statuses and sample ends, as policies see them (scripted backend, no model)."""
import json

import pytest

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.policy import Decision, Policy, Status
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from tests.support.runtime_policies import LaunchN, PruneAfter


def run(policy, script=lambda c: "a" * 60 + " \\boxed{3}", **kw):
    spec = RequestSpec(id="r", prompt="q", policy=policy, params=SamplingParams(seed=1, max_new_tokens=80), **kw)
    [r] = list(Scheduler(ScriptedBackend(script, tokens_per_step=3)).run([spec]))
    return r


def test_an_aborted_sample_ends_once_with_the_abort_status():
    policy = PruneAfter(3, 5)
    r = run(policy)
    ends = [(e["sample"], e["status"]) for e in r.trace if e["ev"] == "sample_end"]
    assert sorted(ends) == [("s0", "finished"), ("s1", "pruned"), ("s2", "pruned")]
    assert sorted(policy.ended) == ["s0", "s1", "s2"]  # on_sample_end once per sample


def test_statuses_are_one_enum_and_plain_strings_in_json():
    r = run(LaunchN(2))
    assert Status.FINISHED == "finished" and str(Status.LIMIT) == "limit"
    assert [t.status for t in r.threads] == [Status.FINISHED] * 2
    dumped = json.loads(json.dumps(r.to_dict()))
    assert [t["status"] for t in dumped["threads"]] == ["finished", "finished"]
    assert {e["status"] for e in dumped["trace"] if "status" in e} == {"finished"}


class OpensScope(Policy):
    """Opens one nested scope the way `how` says, and records what happened."""

    name = "test-opens-scope"

    def __init__(self, how):
        self.how, self.child, self.decision = how, LaunchN(1), None

    def start(self, ctx):
        self.how(ctx, self.child)

    def on_scope_done(self, ctx, scope, decision):
        self.decision = decision

    def finalize(self, ctx):
        return Decision(self.decision.answer if self.decision else None)


def test_a_nested_scope_is_driven_by_the_policy_it_names():
    parent = OpensScope(lambda ctx, child: child.start(ctx.scope(policy=child, tag="sub")))
    r = run(parent)
    assert r.error is None and r.answer == "3"
    assert parent.child.ended == ["s0"] and parent.decision.answer == "3"


@pytest.mark.parametrize("how, error", [
    (lambda ctx, child: child.start(ctx.scope(tag="sub")), "missing 1 required keyword-only argument: 'policy'"),
    (lambda ctx, child: ctx.scope(policy="self_consistency"), "needs a Policy, got str"),
    (lambda ctx, child: ctx.abort(ctx.launch(), status="running"), "a sample ends finished"),
])
def test_bad_scope_calls_end_the_request_with_a_clear_error(how, error):
    r = run(OpensScope(how))
    assert r.error is not None and error in r.error
