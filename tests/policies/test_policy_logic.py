"""Pure logic inside the policies: confidence windows, vote rules, parsing, estimates."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.policies import POLICY_NAMES, make_policy, policy_params
from parareason.runtime.driver import policy_width
from parareason.policies.confidence import vote_is_decided
from parareason.policies.confidence_window import ConfidenceTracker, percentile, token_confidence
from parareason.policies.ffs import estimate_tokens_saved
from parareason.policies.multi_temperature import temperature_schedule
from parareason.policies.rpc import path_weight
from parareason.policies.scale_prompts import estimate_difficulty, parse_subproblems, solved_block


def test_token_confidence_is_high_when_alternatives_are_unlikely():
    peaked = [(1, -0.01), (2, -6.0), (3, -7.0)]
    flat = [(1, -1.0), (2, -1.1), (3, -1.2)]
    assert token_confidence(peaked, -0.01) > token_confidence(flat, -1.0)
    assert token_confidence(None, -0.5) == -0.5  # fallback: the sampled token's logprob


def test_tracker_sliding_window_and_lowest_group():
    t = ConfidenceTracker(window=2)
    tops = [[(0, -1.0)], [(0, -3.0)], [(0, -0.5)], [(0, -0.1)]]  # token confidences 1, 3, .5, .1
    t.update([-0.1] * 2, tops[:2])
    assert t.full and t.current_group == pytest.approx(2.0)
    t.update([-0.1] * 4, tops)  # only the two new positions are consumed
    assert t.tokens == 4
    assert t.current_group == pytest.approx(0.3)
    assert t.lowest_group == pytest.approx(0.3)  # windows: 2.0, 1.75, 0.3
    assert t.trace_confidence == pytest.approx(0.3)
    assert t.vote_weight() == pytest.approx(0.3)


def test_tracker_short_trace_uses_mean_and_fallback_weight_is_positive():
    t = ConfidenceTracker(window=10)
    t.update([-0.2, -0.4], None)
    assert not t.full and t.lowest_group is None
    assert t.trace_confidence == pytest.approx(-0.3)
    assert t.vote_weight() == pytest.approx(math.exp(-0.3))


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=30), st.floats(0, 100))
def test_percentile_is_within_range_and_monotone(xs, q):
    v = percentile(xs, q)
    assert min(xs) - 1e-9 <= v <= max(xs) + 1e-9
    assert percentile(xs, 0) == min(xs) and percentile(xs, 100) == max(xs)
    assert percentile(xs, min(100, q + 10)) >= v - 1e-9


def test_vote_is_decided():
    assert vote_is_decided([5, 1], remaining=3)
    assert not vote_is_decided([5, 2], remaining=3)  # 2 + 3 = 5 ties the leader
    assert not vote_is_decided([], remaining=0)
    assert vote_is_decided([1], remaining=0)


@settings(max_examples=200)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=6), st.integers(0, 10), st.data())
def test_decided_vote_cannot_be_overturned(counts, remaining, data):
    """Property: when decided, no way of spreading the remaining votes changes the winner."""
    if not vote_is_decided(counts, remaining):
        return
    leader = max(range(len(counts)), key=lambda i: counts[i])
    extra = data.draw(st.lists(st.integers(0, len(counts)), min_size=remaining, max_size=remaining))
    final = list(counts) + [0]  # index len(counts): a brand-new answer
    for e in extra:
        final[e] += 1
    assert all(final[leader] > c for i, c in enumerate(final) if i != leader)


def test_ffs_tokens_saved_estimate():
    assert estimate_tokens_saved([100, 200], [50, 160, 300]) == 3 * 150
    assert estimate_tokens_saved([], [10]) == 0
    assert estimate_tokens_saved([100], []) == 0


def test_temperature_schedule_is_balanced():
    sched = temperature_schedule(8, (0.3, 0.7, 1.0))
    assert sched[:3] == [0.3, 0.7, 1.0]
    assert sorted(sched.count(t) for t in (0.3, 0.7, 1.0)) == [2, 3, 3]
    with pytest.raises(ValueError):
        temperature_schedule(3, ())


def test_rpc_path_weight():
    assert path_weight(0.0) == 1.0
    assert 0 < path_weight(-2.0) < path_weight(-0.5) < 1
    assert path_weight(None) == 0.0


def test_parse_subproblems():
    text = ("Here is the plan:\n1. Find how many clips in May.\n2) Add April and May.\n"
            "**Step 3:** Check the total.\n4. Extra\n")
    assert parse_subproblems(text, 3) == ["Find how many clips in May.", "Add April and May.",
                                          "Check the total."]
    assert parse_subproblems("Just solve it directly.", 4) == []


def test_solved_block_propagates_answers():
    assert solved_block([], []) == ""
    block = solved_block(["Find May", "Add"], ["24", None])
    assert "1. Find May Result: 24" in block and "2. Add Result: unknown" in block


def test_estimate_difficulty():
    assert estimate_difficulty(["3"], [0.0], agree=1) == 0.0  # certain, agreeing
    assert estimate_difficulty([None], [-0.1], agree=0) == 1.0  # no answer: hard
    assert estimate_difficulty([], [], agree=0) == 1.0
    agree = estimate_difficulty(["3", "3"], [-0.1, -0.1], agree=2)
    split = estimate_difficulty(["3", "4"], [-0.1, -0.1], agree=1)
    unsure = estimate_difficulty(["3", "3"], [-2.0, -2.0], agree=2)
    assert agree < split and agree < unsure


def test_registry_builds_every_policy_and_rejects_unknowns():
    for name in POLICY_NAMES:
        assert "n" in policy_params(name)
        assert policy_width(make_policy(name, n=3)) == 3  # DeepPrune's n is its width
    assert make_policy("sc").name == "self_consistency"
    assert make_policy("multi_temp", temperatures=[0.5, 1]).params.temperatures == (0.5, 1.0)
    with pytest.raises(ValueError):
        make_policy("nope")
    with pytest.raises(TypeError):
        make_policy("ffs", bogus=1)
    with pytest.raises(ValueError):
        make_policy("deepconf", mode="sideways")


def test_deepconf_low_and_high_are_policies_by_name():
    low, high = make_policy("deepconf_low", n=8), make_policy("deepconf-high", n=8, mode="offline")
    assert (low.params.variant, high.params.variant) == ("low", "high")
    assert high.params.mode == "offline" and low.params.n == 8
    assert "deepconf_low" in POLICY_NAMES and "deepconf_high" in POLICY_NAMES
