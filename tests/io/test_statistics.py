"""Bootstrap CIs and the SC@k curve (parareason/io/statistics.py): hand-computed cases,
properties on random inputs, and a small fixture whose SC@k values are worked out below."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.io.statistics import (ScPoint, accuracy_ci, paired_difference_ci, question_samples,
                                      sc_accuracy_at, sc_at_k_curve, sc_k_values, vote_credit)
from parareason.runtime.result import Result, ThreadRecord


def test_accuracy_ci_matches_the_binomial_quantiles():
    # 50 of 100 right: the bootstrap mean is Binomial(100, 0.5) / 100, whose 2.5% and
    # 97.5% quantiles are 40 and 60 (normal approximation: 0.5 +- 1.96 * 0.05 = [0.402, 0.598]).
    lo, hi = accuracy_ci([True, False] * 50)
    assert lo == pytest.approx(0.40, abs=0.011) and hi == pytest.approx(0.60, abs=0.011)
    # two questions, one right: resampled means are 0, 0.5, 1 with P(0) = P(1) = 1/4 > 2.5%
    assert accuracy_ci([True, False]) == (0.0, 1.0)


def test_paired_difference_ci_matches_the_normal_approximation():
    # 100 questions: 20 only A gets right, 10 only B, 35 both, 35 neither.
    # d = A - B per question: mean 0.1, E[d^2] = 0.3, var 0.29, se = sqrt(0.29 / 100) = 0.0539,
    # 95% CI 0.1 +- 1.96 * 0.0539 = [-0.006, 0.206].
    a = [1] * 20 + [0] * 10 + [1] * 35 + [0] * 35
    b = [0] * 20 + [1] * 10 + [1] * 35 + [0] * 35
    diff, (lo, hi) = paired_difference_ci(a, b)
    assert diff == pytest.approx(0.1)
    assert lo == pytest.approx(-0.006, abs=0.012) and hi == pytest.approx(0.206, abs=0.012)
    # unpaired, 0.55 vs 0.45 on 100 questions each gives a CI about 0.28 wide: pairing narrows it
    assert hi - lo < 0.25


def test_degenerate_and_too_small_inputs():
    assert accuracy_ci([True] * 7) == (1.0, 1.0)
    assert accuracy_ci([True]) is None and accuracy_ci([]) is None
    assert paired_difference_ci([1, 1, 0], [0, 0, -1]) == (1.0, (1.0, 1.0))  # every question differs by 1
    with pytest.raises(ValueError, match="same questions"):
        paired_difference_ci([1, 0], [1])


outcomes = st.lists(st.booleans(), min_size=2, max_size=40)


@settings(max_examples=30, deadline=None)
@given(outcomes)
def test_accuracy_ci_contains_the_point_estimate(correct):
    lo, hi = accuracy_ci(correct)
    point = sum(correct) / len(correct)
    assert 0.0 <= lo <= point + 1e-12 and point - 1e-12 <= hi <= 1.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=40))
def test_paired_ci_contains_the_difference_and_is_zero_for_identical_policies(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    diff, (lo, hi) = paired_difference_ci(a, b)
    assert diff == pytest.approx((sum(a) - sum(b)) / len(a))
    assert -1.0 <= lo <= diff + 1e-12 and diff - 1e-12 <= hi <= 1.0
    assert paired_difference_ci(a, a) == (0.0, (0.0, 0.0))


def thread(tid, answer, tokens, status="finished", parent=None):
    return ThreadRecord(id=tid, parent=parent, status=status, reason=None, tokens=tokens, answer=answer)


def result(qid, reference, threads, correct=True):
    return Result(id=qid, prompt="p", answer=None, correct=correct, policy="sc", protocol="plain",
                  threads=threads, reference=reference)


# q1 (reference 4): answers 4, 4, 4, 5; sample 0 spawned a child, so its tokens are 10 + 4.
# q2 (reference 9): answers 9, 1, 1 and one pruned sample that does not vote.
# q3 has no reference and is left out.
FIXTURE = [
    result("q1", "4", [thread("a", "4", 10), thread("a.c", None, 4, parent="a"), thread("b", "4", 20),
                       thread("c", "4", 30), thread("d", "5", 40)]),
    result("q2", "9", [thread("a", "9", 5), thread("b", "1", 5), thread("c", "1", 5),
                       thread("d", "9", 5, status="pruned")], correct=False),
    result("q3", None, [thread("a", "7", 5)], correct=None),
]


def test_sc_at_k_on_a_fixture_with_known_answers():
    # q1: k=1 3/4 right; k=2 three {4,4} pairs right + three {4,5} ties worth 1/2 -> 4.5/6 = 0.75; k=4 right.
    #     tokens: 104 over 4 samples -> 26, 52, 104.
    # q2: k=1 1/4 (the pruned sample has no vote); k=2 {9,1} twice ties (1/2 each), {9,pruned} right,
    #     {1,1} and {1,pruned} x2 wrong -> 2/6; k=4: 1 beats 9 -> wrong. tokens 5, 10, 20.
    curve = sc_at_k_curve(FIXTURE)
    assert [p.k for p in curve] == [1, 2, 4] and all(p.questions == 2 for p in curve)
    assert [p.accuracy for p in curve] == [0.5, round((0.75 + 2 / 6) / 2, 4), 0.5]
    assert [p.tokens_per_prompt for p in curve] == [15.5, 31.0, 62.0]
    # Results read back from JSON give the same curve
    assert sc_at_k_curve([r.to_dict() for r in FIXTURE]) == curve


def test_sc_at_k_draws_random_subsets_with_a_fixed_seed():
    answers = ["3"] * 9 + ["4"] * 7  # 16 samples, majority right at k = 16
    r = result("q", "3", [thread(f"t{i}", a, 10 + i) for i, a in enumerate(answers)])
    curve = sc_at_k_curve([r])
    assert [p.k for p in curve] == [1, 2, 4, 8, 16]
    assert curve == sc_at_k_curve([r])  # same seed, same subsets
    assert curve[0].accuracy == pytest.approx(9 / 16)  # 16 one-sample subsets: enumerated, exact
    assert curve[-1].accuracy == 1.0 and curve[-1].tokens_per_prompt == sum(10 + i for i in range(16))
    assert curve[2].tokens_per_prompt == pytest.approx(4 * 17.5, abs=3)  # random 4-subsets: about 4 x mean
    assert sc_at_k_curve([r], seed=1) != curve


def test_helpers():
    assert sc_k_values(1) == [1] and sc_k_values(6) == [1, 2, 4, 6] and sc_k_values(32) == [1, 2, 4, 8, 16, 32]
    assert sc_k_values(0) == []
    assert vote_credit([None, None], "1") == 0.0 and vote_credit(["1.0", "1"], "1") == 1.0  # math-equivalent
    assert question_samples(FIXTURE[2]) is None
    assert math.isclose(vote_credit(["2", "3"], "3"), 0.5)


def test_sc_accuracy_at_interpolates_in_log_tokens_and_refuses_to_extrapolate():
    curve = [ScPoint(1, 0.2, 100.0, 10), ScPoint(2, 0.3, 200.0, 10), ScPoint(4, 0.5, 400.0, 10)]
    assert sc_accuracy_at(curve, 200.0) == pytest.approx(0.3)
    assert sc_accuracy_at(curve, 100 * 2 ** 0.5) == pytest.approx(0.25)  # halfway between k=1 and 2 in log
    assert sc_accuracy_at(curve, 300.0) == pytest.approx(0.3 + 0.2 * math.log(1.5, 2), abs=1e-4)
    assert sc_accuracy_at(curve, 50.0) is None and sc_accuracy_at(curve, 800.0) is None
    assert sc_accuracy_at(curve[:1], 100.0) is None
    # the curve's token counts are rounded: SC@16's own cost (4788.21875 vs 4788.2) is inside
    assert sc_accuracy_at(curve, 400.02) == pytest.approx(curve[-1].accuracy)
    assert sc_accuracy_at(curve, 99.98) == pytest.approx(curve[0].accuracy)


def test_summary_places_each_policy_against_sc_at_its_token_cost(tmp_path):
    import json

    from parareason.io.summary import PolicySummary, write_summary

    curve = [ScPoint(1, 0.2, 100.0, 10), ScPoint(2, 0.3, 200.0, 10), ScPoint(4, 0.5, 400.0, 10)]
    rows = [PolicySummary("sc", 10, 10, 5, 0.5, 4000, 400.0, 0, 1.0),
            PolicySummary("cheap", 10, 10, 4, 0.4, 2000, 200.0, 0, 1.0),
            PolicySummary("tiny", 10, 10, 1, 0.1, 500, 50.0, 0, 1.0)]
    paths = write_summary(tmp_path, rows, {"dataset": "d"}, curve=curve, curve_policy="sc")
    md = paths["md"].read_text()
    assert "| cheap | 200.0 | 40.0% | 30.0% | +10.0 pts |" in md
    assert "| tiny | 50.0 | 10.0% | outside the curve | n/a |" in md
    at = json.loads(paths["json"].read_text())["sc_at_k"]["at_policy_tokens"]
    assert at == {"sc": 0.5, "cheap": 0.3, "tiny": None}
