"""Parity: DeepPrune's greedy clustering and cluster vote against a plain numpy
transcription of the paper's rule (each trace, in arrival order, joins the most similar
cluster when the judge score to its representative exceeds tau, else founds one; the
answer is the cluster with the largest size), on random judge scores."""
from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.pruning.clusters import OnlineClusters
from parareason.pruning.deepprune import DeepPruneParams, DeepPrunePolicy
from tests.support.deepprune_fakes import FakeContext, LabelJudge, Plan, drive


def ref_greedy(sim: np.ndarray, tau: float) -> list[int]:
    """Cluster index of each trace; a cluster is represented by its founder."""
    founders: list[int] = []
    assign = []
    for i in range(len(sim)):
        scores = np.array([sim[i, f] for f in founders])
        if len(scores) and scores.max() > tau:
            assign.append(int(np.argmax(scores)))  # argmax: the oldest cluster on ties
        else:
            founders.append(i)
            assign.append(len(founders) - 1)
    return assign


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.floats(0.05, 0.95), st.integers(0, 2**16))
def test_greedy_clustering_matches_the_reference(n, tau, seed):
    rng = np.random.default_rng(seed)
    sim = rng.random((n, n))
    sim = np.round((sim + sim.T) / 2, 2)  # symmetric, with ties
    oc = OnlineClusters(threshold=tau)
    ours = []
    for i in range(n):
        reps = oc.comparable_reps(lambda s: True)
        scores: dict[int, float] = {}
        for cid, rep in reps:
            scores[cid] = max(scores.get(cid, 0.0), float(sim[i, int(rep[1:])]))
        ours.append(oc.place(f"t{i}", scores, lambda s: True).cluster)
    assert ours == ref_greedy(sim, tau)
    sizes = np.bincount(ref_greedy(sim, tau))
    assert [oc.clusters[c].size for c in sorted(oc.clusters)] == list(sizes)


def test_hand_computed_clustering():
    #        t0   t1   t2   t3
    sim = np.array([[1.0, 0.9, 0.2, 0.8],
                    [0.9, 1.0, 0.3, 0.7],
                    [0.2, 0.3, 1.0, 0.6],
                    [0.8, 0.7, 0.6, 1.0]])
    # tau 0.5: t0 founds A; t1 joins A (0.9); t2 founds B (0.2); t3: A 0.8 > B 0.6, joins A
    assert ref_greedy(sim, 0.5) == [0, 0, 1, 0]
    oc = OnlineClusters(threshold=0.5)
    actions = [oc.place("t0", {}, lambda s: True).action,
               oc.place("t1", {0: 0.9}, lambda s: True).action,
               oc.place("t2", {0: 0.2}, lambda s: True).action,
               oc.place("t3", {0: 0.8, 1: 0.6}, lambda s: True).action]
    assert actions == ["new", "prune", "new", "prune"]
    assert oc.clusters[0].size == 3 and oc.clusters[1].size == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=10), st.integers(0, 2**16))
def test_cluster_vote_matches_the_largest_cluster(labels, seed):
    """With a perfect judge every cluster is one answer, and the vote is the paper's:
    the answer of the largest cluster, each cluster weighing its size."""
    ctx = FakeContext([Plan(length=150, label=x) for x in labels])
    policy = DeepPrunePolicy(DeepPruneParams(width=len(labels), check_every=16), judge=LabelJudge())
    rng = random.Random(seed)
    drive(policy, ctx, lambda live: (rng.choice(live), rng.randint(1, 40)))
    d = policy.finalize(ctx)
    counts = {x: labels.count(x) for x in set(labels)}
    assert {v["answer"]: v["weight"] for v in d.details["votes"]} == counts
    assert counts[d.answer] == max(counts.values())


def test_each_trace_is_judged_once_unless_founders_are_rechecked():
    plans = [Plan(length=300, label=x) for x in "abab"]

    def placements(recheck: bool) -> dict[str, int]:
        ctx = FakeContext(list(plans))
        policy = DeepPrunePolicy(DeepPruneParams(width=4, check_every=32, recheck_founders=recheck,
                                                 max_checks=3), judge=LabelJudge())
        order = iter(range(10_000))
        drive(policy, ctx, lambda live: (live[next(order) % len(live)], 8))
        out: dict[str, int] = {}
        for e in ctx.events:
            if e["kind"] == "deepprune":
                out[e["sample"]] = out.get(e["sample"], 0) + 1
        return out

    assert max(placements(False).values()) == 1  # the paper: one judgement per trace
    assert max(placements(True).values()) == 3  # founders judged at up to max_checks checkpoints
