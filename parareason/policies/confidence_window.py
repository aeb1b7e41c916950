"""Token, group and trace confidence as in DeepConf (Fu et al. 2025, "Deep Think with
Confidence"), matched to facebookresearch/deepconf `deepconf/utils.py`
(`compute_confidence`, `compute_least_grouped`, `calculate_mean_confidence`,
`calculate_tail_confidence`, `calculate_bottom_window_confidence`,
`filter_top_confidence`) and `deepconf/processors.py` (the online sliding window).

Token confidence C_i = -(1/k) * sum of the log-probabilities of the top-k alternative
tokens at position i: a peaked distribution puts very little mass on alternatives, so
C_i is large when the model is sure. Group confidence = mean C_i over a sliding window
of `window` tokens. A trace's confidence is one of the paper's measures (`MEASURES`):

* ``lowest``  lowest group confidence (the reference's ``min_window``, the online rule);
* ``bottom10`` mean of the lowest 10% of group confidences (``bottom_window``);
* ``tail``    mean token confidence over the last `window` tokens (``tail``; the
              reference's tail length is 2048, its window default, so we tie the two);
* ``mean``    mean token confidence of the whole trace (``mean``).

A trace shorter than one window has no full group: every window measure is its mean
token confidence, as in the reference. A trace with no tokens scores 0.0 (the
reference's ``[0]``).

Deliberate deviations from the reference:
* no rounding: the reference rounds C_i and each group mean to 3 decimals; we keep full
  precision (differences <= 5e-4, never a different threshold side in practice);
* when the backend returns no top-k alternatives, C_i falls back to the sampled token's
  own log-probability (also "higher = surer", on another scale); one request never mixes
  the two because every sample of a policy asks for the same `top_logprobs`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MEASURES = ("lowest", "bottom10", "tail", "mean")
BOTTOM_FRACTION = 0.1  # the paper's bottom-10% group confidence


def token_confidence(top: Sequence[tuple[int, float]] | None, sampled_logprob: float) -> float:
    if top:
        return -sum(lp for _, lp in top) / len(top)
    return sampled_logprob


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of a non-empty sequence, linear interpolation
    (numpy's default, as the reference's `np.percentile`)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), min(max(q, 0.0), 100.0)))


def group_confidences(confs: Sequence[float], window: int) -> np.ndarray:
    """Mean token confidence of every full sliding window (empty when the trace is shorter)."""
    c = np.asarray(confs, dtype=np.float64)
    window = max(1, int(window))
    if len(c) < window:
        return np.zeros(0)
    csum = np.concatenate(([0.0], np.cumsum(c)))
    return (csum[window:] - csum[:-window]) / window


def trace_confidence(confs: Sequence[float], window: int, measure: str = "lowest") -> float:
    """One trace's confidence under `measure` (see the module docstring)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown confidence measure {measure!r}; choose one of {', '.join(MEASURES)}")
    c = np.asarray(confs, dtype=np.float64)
    if len(c) == 0:
        return 0.0
    if measure == "mean":
        return float(c.mean())
    if measure == "tail":
        return float(c[-max(1, int(window)):].mean())
    groups = group_confidences(c, window)
    if len(groups) == 0:
        return float(c.mean())
    if measure == "lowest":
        return float(groups.min())
    k = max(1, int(len(groups) * BOTTOM_FRACTION))  # the reference's int(), not round()
    return float(np.sort(groups)[:k].mean())


def top_percent_mask(confidences: Sequence[float], keep_percent: float) -> list[bool]:
    """Which traces DeepConf's offline filter keeps: confidence >= the
    (100 - keep_percent)-th percentile (`filter_top_confidence`). Ties at the cut are kept."""
    if len(confidences) == 0:
        return []
    cut = percentile(confidences, 100.0 - keep_percent)
    return [c >= cut for c in confidences]


class ConfidenceTracker:
    """Token confidences of one growing trace, with its current sliding window kept
    incrementally (the online stop rule looks at it after every step)."""

    def __init__(self, window: int) -> None:
        self.window = max(1, window)
        self.tokens = 0
        self.used_top_k = False
        self.fewest_alternatives: int | None = None  # smallest top-k list the backend returned
        self.confs: list[float] = []
        self._win_sum = 0.0
        self.lowest_group: float | None = None  # min over full windows seen so far

    def update(self, logprobs: Sequence[float],
               top_logprobs: Sequence[Sequence[tuple[int, float]]] | None) -> None:
        """Consume the positions added since the last call."""
        w = self.window
        for i in range(self.tokens, len(logprobs)):
            top = top_logprobs[i] if top_logprobs is not None and i < len(top_logprobs) else None
            if top:
                self.used_top_k = True
                self.fewest_alternatives = min(len(top), self.fewest_alternatives or len(top))
            c = token_confidence(top, logprobs[i])
            self.confs.append(c)
            self._win_sum += c
            if len(self.confs) > w:
                self._win_sum -= self.confs[-w - 1]
            if len(self.confs) >= w:
                g = self._win_sum / w
                self.lowest_group = g if self.lowest_group is None else min(self.lowest_group, g)
        self.tokens = max(self.tokens, len(logprobs))

    @property
    def full(self) -> bool:
        return len(self.confs) >= self.window

    @property
    def current_group(self) -> float | None:
        """Confidence of the latest window (partial while the trace is shorter)."""
        n = min(len(self.confs), self.window)
        return (self._win_sum / n) if n else None

    @property
    def trace_confidence(self) -> float | None:
        """Lowest full-window group confidence; the plain mean for short traces."""
        if self.lowest_group is not None:
            return self.lowest_group
        return (sum(self.confs) / len(self.confs)) if self.confs else None

    def measure(self, name: str) -> float:
        """The trace's confidence under one of `MEASURES` (0.0 with no tokens)."""
        return trace_confidence(self.confs, self.window, name)

    def weight_of(self, confidence: float) -> float:
        """A positive voting weight that grows with confidence: the confidence itself
        for top-k confidences (the reference's weighted vote), exp() of the fallback."""
        return max(confidence, 1e-6) if self.used_top_k else math.exp(confidence)

    def vote_weight(self) -> float:
        c = self.trace_confidence
        return 0.0 if c is None else self.weight_of(c)
