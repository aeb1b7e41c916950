"""DeepPrune on the real scheduler with the ScriptedBackend test double (no model).

Each scripted reply carries a hidden label ("label=a") that `LabelJudge` (a scripted
judge) reads, so the judge's verdicts are known and the test checks the policy's
actions: which samples are pruned, what is recorded, what the vote says."""
from __future__ import annotations

import re

from parareason.policies import make_policy
from parareason.pruning.deepprune import DeepPruneParams, DeepPrunePolicy
from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptContext, ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.policy import Decision, Policy, PolicyContext
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler
from tests.support.deepprune_fakes import LabelJudge

PAD = "Let us add the numbers step by step and check the work. " * 3


def reply(label: str, answer: str) -> str:
    return f"[label={label}] {PAD}So the answer is \\boxed{{{answer}}}."


REPLIES = [reply("a", "4"), reply("a", "4"), reply("b", "5"), reply("a", "4"), reply("b", "5"), reply("a", "4")]


def by_sample(replies: list[str]):
    def script(ctx: ScriptContext) -> str:
        return replies[int(re.search(r"\|s(\d+)\.", ctx.seq_id).group(1)) % len(replies)]
    return script


def run(policy: Policy, replies: list[str], tokens_per_step: int = 4) -> Result:
    backend = ScriptedBackend(by_sample(replies), tokens_per_step=tokens_per_step)
    spec = RequestSpec(id="q", prompt="What is 2+2?", policy=policy, reference="4",
                       params=SamplingParams(temperature=0.7, max_new_tokens=400, seed=0), limits=Limits())
    [result] = list(Scheduler(backend).run([spec]))
    assert result.error is None, result.error
    return result


def events(result: Result) -> list[dict]:
    return [e for e in result.trace or [] if e.get("kind") == "deepprune"]


def test_prunes_duplicates_and_votes_by_cluster_size():
    policy = DeepPrunePolicy(DeepPruneParams(width=6, check_every=16, threshold=0.5), judge=LabelJudge())
    res = run(policy, REPLIES)
    assert res.answer == "4" and res.correct
    status = [t.status for t in res.threads]
    assert status.count("finished") == 2 and status.count("pruned") == 4
    assert all("deepprune" in (t.reason or "") for t in res.threads if t.status == "pruned")
    votes = {v["answer"]: v["weight"] for v in res.details["votes"]}
    assert votes == {"4": 4, "5": 2}
    # every prune is in the trace with its cluster and judge score
    prunes = [e for e in events(res) if e["action"] == "prune"]
    assert len(prunes) == 4 and all(e["score"] == 1.0 and "cluster" in e for e in prunes)
    full = sum(len(r) for r in REPLIES)
    assert res.usage["generated_tokens"] < full
    assert res.details["tokens_saved_est"] > 0


def test_same_seeds_same_decisions():
    a = run(DeepPrunePolicy(DeepPruneParams(width=6, check_every=16), judge=LabelJudge(noise=0.5, seed=3)), REPLIES)
    b = run(DeepPrunePolicy(DeepPruneParams(width=6, check_every=16), judge=LabelJudge(noise=0.5, seed=3)), REPLIES)
    assert [(e["sample"], e["action"]) for e in events(a)] == [(e["sample"], e["action"]) for e in events(b)]


def test_registry_builds_it_with_the_answer_judge():
    """`--policy deepprune` path: make_policy maps n -> width. The answer judge knows
    nothing until traces finish (0.5, not above the threshold), so nothing is pruned."""
    res = run(make_policy("deepprune", n=4, judge="answer", check_every=16), REPLIES)
    assert [t.status for t in res.threads] == ["finished"] * 4
    assert res.answer == "4"
    assert res.details["votes"] == [{"answer": "4", "weight": 3.0}, {"answer": "5", "weight": 1.0}]


class SubScopes(Policy):
    """Test parent: runs a DeepPrune child in each of two nested scopes."""

    name = "test-deepprune-parent"

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def start(self, ctx: PolicyContext) -> None:
        for i in range(2):
            child = DeepPrunePolicy(DeepPruneParams(width=3, check_every=16), judge=LabelJudge())
            child.start(ctx.scope(policy=child, tag=f"hard-{i}", budget=2000))

    def on_scope_done(self, ctx, scope, decision):
        self.decisions.append(decision)

    def finalize(self, ctx):
        return Decision(self.decisions[0].answer if self.decisions else None,
                        {"children": [d.details["pruned"] for d in self.decisions]})


def test_nested_inside_another_policy():
    res = run(SubScopes(), [reply("a", "4")] * 6)
    assert res.answer == "4"
    assert res.details["children"] == [2, 2]  # each scope keeps one of its three samples
    assert [t.status for t in res.threads].count("pruned") == 4
