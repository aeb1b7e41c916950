"""DeepPrune clustering invariants (hypothesis) on scripted samples and a scripted judge."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.pruning.clusters import OnlineClusters
from parareason.pruning.deepprune import DeepPruneParams, DeepPrunePolicy
from tests.support.deepprune_fakes import FakeContext, LabelJudge, Plan, drive

plans_st = st.lists(
    st.builds(Plan, length=st.integers(1, 400), label=st.sampled_from(["a", "b", "c", "d"])),
    min_size=1, max_size=10)
params_st = st.builds(
    DeepPruneParams,
    width=st.integers(1, 10), check_every=st.integers(1, 96), max_checks=st.integers(1, 4),
    threshold=st.floats(0.05, 0.95), reps_per_cluster=st.integers(1, 3),
    weighting=st.sampled_from(["size", "size_confidence"]), recheck_founders=st.booleans())


def covered(policy: DeepPrunePolicy, ctx: FakeContext) -> None:
    """Every pruned sample sits in a cluster with a live or finished representative."""
    views = {s.id: s for s in ctx.samples}
    for c in policy.clusters.clusters.values():
        if c.pruned:
            assert any(views[r].live or views[r].status == "finished" for r in c.reps), c
        for p in c.pruned:
            assert views[p].status == "pruned"
            assert p in policy.clusters.cluster_of and policy.clusters.cluster_of[p] == c.id


@settings(max_examples=150, deadline=None)
@given(plans=plans_st, params=params_st, noise=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_invariants_hold_at_every_step(plans, params, noise, seed):
    ctx = FakeContext(plans)
    policy = DeepPrunePolicy(params, judge=LabelJudge(noise=noise, seed=seed))
    rng = random.Random(seed)

    def check():
        covered(policy, ctx)
        assert sum(s.live for s in ctx.samples) <= params.width
        assert len(ctx.samples) <= params.width  # all finish normally: no replacements

    drive(policy, ctx, lambda live: (rng.choice(live), rng.randint(1, 64)), check)
    decision = policy.finalize(ctx)

    finished = [s for s in ctx.samples if s.status == "finished"]
    # The vote counts only finished traces' answers...
    assert {v["answer"] for v in decision.details["votes"]} <= {s.answer for s in finished}
    if not finished:
        assert decision.answer is None
    else:
        assert decision.answer in {s.answer for s in finished}
    # ...and each cluster with a finished representative votes with its whole size.
    sizes = sum(c.size for c in policy.clusters.clusters.values()
                if any(ctx.samples[int(r[1:])].status == "finished" for r in c.reps))
    if params.weighting == "size":
        assert sum(v["weight"] for v in decision.details["votes"]) == pytest.approx(sizes)
    # Every sample ended in exactly one state; each prune was recorded with its score.
    assert all(not s.live for s in ctx.samples)
    prunes = [e for e in ctx.events if e["kind"] == "deepprune" and e["action"] == "prune"]
    assert {e["sample"] for e in prunes} == {s.id for s in ctx.samples if s.status == "pruned"}
    assert all(e["score"] > params.threshold for e in prunes)


@settings(max_examples=80, deadline=None)
@given(plans=st.lists(st.builds(Plan, length=st.integers(1, 300), label=st.sampled_from(["a", "b"]),
                                ending=st.sampled_from(["finished", "finished", "failed", "limit"])),
                      min_size=1, max_size=16),
       width=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_lost_representatives_are_replaced_within_width(plans, width, seed):
    ctx = FakeContext(plans)
    params = DeepPruneParams(width=width, check_every=16, threshold=0.5)
    policy = DeepPrunePolicy(params, judge=LabelJudge())
    rng = random.Random(seed)

    seen = [0]

    def check():
        assert sum(s.live for s in ctx.samples) <= width
        views = {s.id: s for s in ctx.samples}
        for e in ctx.events[seen[0]:]:  # a prune always lands in a cluster that is covered now
            if e["kind"] == "deepprune" and e["action"] == "prune":
                reps = policy.clusters.clusters[policy.clusters.cluster_of[e["sample"]]].reps
                assert any(views[r].live or views[r].status == "finished" for r in reps)
        seen[0] = len(ctx.events)

    drive(policy, ctx, lambda live: (rng.choice(live), rng.randint(1, 40)), check)
    policy.finalize(ctx)
    assert len(ctx.samples) <= 2 * width  # at most `width` replacements
    assert policy.replacements == sum(1 for s in ctx.samples if s.tag == "deepprune-replacement")
    # A cluster left without a representative got a replacement sample, unless none could start.
    replaced = {e["cluster"] for e in ctx.events if e["kind"] == "deepprune" and e["action"] == "replace"}
    views = {s.id: s for s in ctx.samples}
    for c in policy.clusters.clusters.values():
        if c.pruned and not any(views[r].status == "finished" for r in c.reps):
            assert c.id in replaced or not ctx._plans or policy.replacements == width


def test_perfect_judge_keeps_one_sample_per_answer_and_majority_by_cluster_size():
    labels = ["7", "7", "7", "9", "9", "7"]
    ctx = FakeContext([Plan(length=200, label=x) for x in labels])
    policy = DeepPrunePolicy(DeepPruneParams(width=6, check_every=32), judge=LabelJudge())
    order = iter(range(10_000))
    drive(policy, ctx, lambda live: (live[next(order) % len(live)], 8))
    d = policy.finalize(ctx)
    assert d.answer == "7"
    assert sorted(s.status for s in ctx.samples).count("finished") == 2  # one rep per answer
    assert {v["answer"]: v["weight"] for v in d.details["votes"]} == {"7": 4, "9": 2}
    assert d.details["pruned"] == 4
    assert d.details["tokens_saved_est"] > 0


def test_reps_per_cluster_keeps_that_many_running():
    ctx = FakeContext([Plan(length=100, label="5") for _ in range(5)])
    policy = DeepPrunePolicy(DeepPruneParams(width=5, check_every=10, reps_per_cluster=2), judge=LabelJudge())
    drive(policy, ctx, lambda live: (live[0], 10))
    assert [s.status for s in ctx.samples].count("finished") == 2
    assert policy.finalize(ctx).answer == "5"


def test_founder_merges_into_matching_cluster_and_takes_its_pruned_members():
    oc = OnlineClusters(threshold=0.5)
    alive = lambda s: True  # noqa: E731
    assert oc.place("x", {}, alive).action == "new"  # cluster 0
    assert oc.place("y", {0: 0.1}, alive).action == "new"  # cluster 1
    assert oc.place("z", {0: 0.2, 1: 0.9}, alive).action == "prune"  # into cluster 1
    p = oc.place("y", {0: 0.8}, alive)  # y re-checked: now looks like x
    assert (p.action, p.cluster, p.merged_from) == ("prune", 0, 1)
    assert oc.clusters[0].reps == ["x"] and sorted(oc.clusters[0].pruned) == ["y", "z"]
    assert 1 not in oc.clusters


def test_sample_that_already_ended_joins_as_representative_never_pruned():
    oc = OnlineClusters(threshold=0.5)
    oc.place("x", {}, lambda s: True)
    p = oc.place("y", {0: 0.99}, lambda s: True, can_prune=False)
    assert p.action == "rep" and oc.clusters[0].reps == ["x", "y"]


def test_no_prune_into_a_cluster_whose_representative_is_gone():
    oc = OnlineClusters(threshold=0.5)
    oc.place("x", {}, lambda s: True)
    p = oc.place("y", {0: 0.99}, lambda s: s != "x")  # x failed: y must carry the cluster
    assert p.action == "rep"
