"""AUROC (with its by-question bootstrap CI), threshold metrics and logistic calibration."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.judge.calibration import LogisticCalibration, fit_logistic
from parareason.judge.metrics import at_threshold, auroc, auroc_ci, threshold_for_precision


def brute_force_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_extremes_and_ties():
    assert auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5] * 4, [1, 0, 1, 0]) == 0.5
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auroc_matches_pairwise_definition(rows):
    scores = [s / 5 for s, _ in rows]
    labels = [y for _, y in rows]
    if all(labels) or not any(labels):
        return
    assert auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels))


def test_auroc_ci_resamples_questions():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 10)
    labels = rng.random(300) < 0.3
    scores = labels * 0.4 + rng.random(300)  # informative but noisy
    lo, hi = auroc_ci(scores, labels, groups, seed=0)
    assert lo < auroc(scores, labels) < hi and 0.5 < lo and hi < 1.0
    assert auroc_ci(scores, labels, groups, seed=0) == (lo, hi)  # seeded
    # One question: no interval; a single class: none either.
    assert all(math.isnan(x) for x in auroc_ci(scores[:10], labels[:10], groups[:10]))
    assert all(math.isnan(x) for x in auroc_ci([0.1, 0.2], [1, 1], ["a", "b"]))


def test_auroc_ci_is_wider_when_pairs_of_a_question_agree():
    """Pairs of one question are correlated: copying each pair 10 times inside its question
    adds no information, and the interval must not shrink as if it did."""
    rng = np.random.default_rng(2)
    labels = rng.random(60) < 0.4
    scores = labels * 0.3 + rng.random(60)
    groups = np.arange(60)
    lo1, hi1 = auroc_ci(scores, labels, groups, seed=0)
    lo10, hi10 = auroc_ci(np.repeat(scores, 10), np.repeat(labels, 10), np.repeat(groups, 10), seed=0)
    assert hi10 - lo10 == pytest.approx(hi1 - lo1, rel=0.25)


def test_precision_recall_at_threshold():
    r = at_threshold([0.9, 0.7, 0.6, 0.2], [1, 0, 1, 0], 0.65)
    assert (r.predicted_positive, r.true_positive) == (2, 1)
    assert r.precision == 0.5 and r.recall == 0.5 and r.accuracy == 0.5
    assert at_threshold([0.5, 0.5], [1, 0], 0.5).predicted_positive == 0  # strictly above


def test_threshold_for_precision_is_lowest_cut_reaching_it():
    scores = [0.95, 0.9, 0.8, 0.7, 0.3]
    labels = [1, 1, 0, 1, 0]
    assert threshold_for_precision(scores, labels, 1.0) == pytest.approx(0.85)  # keeps 0.95, 0.9
    assert threshold_for_precision(scores, labels, 0.75) == pytest.approx(0.5)  # keeps down to 0.7
    assert at_threshold(scores, labels, threshold_for_precision(scores, labels, 0.75)).precision == 0.75
    assert threshold_for_precision([0.5, 0.4], [0, 0], 0.5) == math.inf


def test_logistic_fit_recovers_parameters_and_roundtrips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 4000)
    y = rng.uniform(0, 1, 4000) < 1 / (1 + np.exp(-(8 * x - 5)))
    cal = fit_logistic(x, y)
    assert cal.a == pytest.approx(8, rel=0.2) and cal.b == pytest.approx(-5, rel=0.2)
    assert cal.fitted_on == 4000
    cal.save(tmp_path / "cal.json")
    again = LogisticCalibration.load(tmp_path / "cal.json")
    assert again == cal and 0 < again(0.3) < again(0.9) < 1
    with pytest.raises(ValueError):
        fit_logistic([0.1, 0.2], [1, 1])
