"""Parity: RPC's Reasoning Pruning and perplexity-consistency vote against a plain
numpy/scipy transcription of WNJXYK/RPC compute_rpc.py (`wpc_evaluator`)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import gamma

from parareason.policies.rpc_weibull import WeibullMixture, reasoning_prune_mask
from tests.support.scripted_policies import by_sample, run


def ref_pdf(x, k, lam):
    return (k / lam) * (x / lam) ** (k - 1) * np.exp(-((x / lam) ** k))


def ref_prune(probas):
    """The pruning half of wpc_evaluator, line for line."""
    probas = np.asarray(probas, dtype=float)

    def nll(params, data):
        w1, k1, lam1, k2, lam2 = params
        return -np.sum(np.log(w1 * ref_pdf(data, k1, lam1) + (1 - w1) * ref_pdf(data, k2, lam2)))

    with np.errstate(all="ignore"):
        res = minimize(nll, [0.5, 1.0, 1.0, 1.5, 2.0], args=(probas,),
                       bounds=[(0.2, 0.8), (0.01, None), (0.01, None), (0.01, None), (0.01, None)])
        w1, k1, lam1, k2, lam2 = res.x
        if lam1 * gamma(1 + 1 / k1) < lam2 * gamma(1 + 1 / k2):
            k1, lam1, k2, lam2, w1 = k2, lam2, k1, lam1, 1 - w1
        out = []
        for p in probas:
            a, b = w1 * ref_pdf(p, k1, lam1), (1 - w1) * ref_pdf(p, k2, lam2)
            p1 = a / (a + b)
            out.append(bool(p1 < 1 - p1 and p < np.mean(probas)))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.001, 1.0, allow_nan=False), min_size=1, max_size=24))
def test_reasoning_pruning_matches_the_reference(probas):
    mask, _ = reasoning_prune_mask(probas)
    assert mask == ref_prune(probas)


def test_pruning_of_a_low_cluster_and_membership_by_hand():
    probas = [0.135, 0.13, 0.14, 0.12, 0.135, 0.13, 0.14, 0.125, 0.95]
    mask, mix = reasoning_prune_mask(probas)
    assert mask == [True] * 8 + [False]  # the low cluster, all below the mean 0.2228
    assert mix.lam_high > mix.lam_low
    # w = 0.5, exponential components (k = 1) with scales 1 and 0.1:
    # P(high | x) = e^-x / (e^-x + 10 e^-10x)
    p_hi, p_lo = WeibullMixture(0.5, 1.0, 1.0, 1.0, 0.1).membership(np.array([0.05, 0.5]))
    assert p_hi == pytest.approx([0.135570, 0.900017], abs=1e-6)
    assert p_lo == pytest.approx(1 - p_hi)


def test_equal_probabilities_prune_nothing():
    assert reasoning_prune_mask([0.5] * 4)[0] == [False] * 4


def test_rpc_policy_drops_the_low_component_before_the_vote():
    # eight improbable, distinct paths say 5, one probable path says 4
    replies = ["?" * (20 + i) + "\\boxed{5}" for i in range(8)] + ["\\boxed{4}"]
    res, _ = run("rpc", by_sample(replies), n=9)
    assert res.details["pruning"] == "weibull"
    assert sorted(res.details["reasoning_pruned"]) == sorted(f"s{i}" for i in range(8))
    assert res.answer == "4"
    plain, _ = run("rpc", by_sample(replies), n=9, pruning="none")
    assert plain.answer == "5" and plain.details["reasoning_pruned"] == []  # 8 x 0.135 > 0.95


def ref_perplexity_consistency(answers, completions, probas):
    """wpc_evaluator's vote without pruning: each distinct completion's probability once."""
    score: dict[str, dict[str, float]] = {}
    for a, c, p in zip(answers, completions, probas):
        score.setdefault(a, {})[c] = p
    return {a: sum(d.values()) for a, d in score.items()}


def test_perplexity_consistency_vote_matches_the_reference():
    replies = ["?" * 3 + "\\boxed{5}", "?" * 3 + "\\boxed{5}", "\\boxed{4}", "?\\boxed{4}", "??" + "\\boxed{6}"]
    res, _ = run("rpc", by_sample(replies), n=5, pruning="none")
    ours = {row["answer"]: row["weight"] for row in res.details["votes"]}
    sure, unsure = -0.05, -2.0
    lens = [len(r) for r in replies]  # one token per character
    mean_lp = [((r.count("?") * unsure) + (n - r.count("?")) * sure) / n for r, n in zip(replies, lens)]
    ref = ref_perplexity_consistency(["5", "5", "4", "4", "6"], replies, np.exp(mean_lp))
    assert ours == pytest.approx(ref, abs=1e-5)
    assert res.answer == max(ref, key=ref.get)
