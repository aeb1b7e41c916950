"""Parity: parareason's DeepConf confidences against a plain numpy transcription of the
paper's formulas (facebookresearch/deepconf deepconf/utils.py), on random traces."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.policies.confidence_window import (ConfidenceTracker, top_percent_mask, token_confidence,
                                                   trace_confidence)


def ref_token_conf(top_lps):  # compute_confidence, without the 3-decimal rounding
    return [-float(np.mean(lps)) for lps in top_lps]


def ref_windows(confs, w):
    return [float(np.mean(confs[i:i + w])) for i in range(len(confs) - w + 1)]


def ref_measure(confs, w, measure):
    if not confs:
        return 0.0
    if measure == "mean":
        return float(np.mean(confs))
    if measure == "tail":
        return float(np.mean(confs[-w:] if len(confs) > w else confs))
    if len(confs) < w:
        return float(np.mean(confs))
    means = ref_windows(confs, w)
    if measure == "lowest":
        return min(means)
    k = max(1, int(len(means) * 0.1))  # calculate_bottom_window_confidence
    return min(means) if k == 1 else float(np.mean(np.partition(means, k - 1)[:k]))


def ref_filter(confs, top_percent):  # filter_top_confidence
    threshold = np.percentile(confs, (1 - top_percent) * 100)
    return [c >= threshold for c in confs]


tops = st.lists(st.lists(st.floats(-12, 0, allow_nan=False), min_size=1, max_size=6), min_size=0, max_size=80)


@settings(max_examples=150, deadline=None)
@given(tops, st.integers(1, 24), st.sampled_from(["lowest", "bottom10", "tail", "mean"]))
def test_trace_confidence_matches_the_reference(top_lps, window, measure):
    ours_tokens = [token_confidence([(0, lp) for lp in lps], lps[0]) for lps in top_lps]
    ref_tokens = ref_token_conf(top_lps)
    assert ours_tokens == pytest.approx(ref_tokens, abs=1e-9)
    assert trace_confidence(ours_tokens, window, measure) == pytest.approx(
        ref_measure(ref_tokens, window, measure), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(tops, st.integers(1, 24))
def test_incremental_tracker_matches_the_reference(top_lps, window):
    t = ConfidenceTracker(window)
    chosen = [lps[0] for lps in top_lps]
    alts = [[(0, lp) for lp in lps] for lps in top_lps]
    for cut in range(0, len(top_lps) + 1, 7):  # tokens arrive in chunks
        t.update(chosen[:cut], alts[:cut])
    t.update(chosen, alts)
    ref = ref_token_conf(top_lps)
    if ref:
        assert t.trace_confidence == pytest.approx(ref_measure(ref, window, "lowest"), abs=1e-9)
        assert t.current_group == pytest.approx(float(np.mean(ref[-window:])), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=64), st.sampled_from([10.0, 50.0, 90.0]))
def test_offline_filter_matches_the_reference(confs, keep_percent):
    assert top_percent_mask(confs, keep_percent) == ref_filter(confs, keep_percent / 100.0)


def test_hand_computed_example():
    # top-2 logprobs per token -> token confidences 1, 3, 0.5, 0.1, 2
    confs = [token_confidence([(0, a), (1, b)], a)
             for a, b in [(-0.5, -1.5), (-2.0, -4.0), (-0.25, -0.75), (-0.05, -0.15), (-1.0, -3.0)]]
    assert confs == pytest.approx([1.0, 3.0, 0.5, 0.1, 2.0])
    # windows of 2: 2.0, 1.75, 0.3, 1.05
    assert trace_confidence(confs, 2, "lowest") == pytest.approx(0.3)
    assert trace_confidence(confs, 2, "bottom10") == pytest.approx(0.3)  # int(4 * 0.1) -> 1 window
    assert trace_confidence(confs, 2, "tail") == pytest.approx(1.05)
    assert trace_confidence(confs, 2, "mean") == pytest.approx(1.32)
    assert trace_confidence(confs, 9, "lowest") == pytest.approx(1.32)  # shorter than a window
    # eta = 50 over 0.3, 1.05, 2.0, 1.75: cut at the median 1.4 keeps the top two
    assert top_percent_mask([0.3, 1.05, 2.0, 1.75], 50) == [False, False, True, True]
