"""Token and group confidence as in DeepConf (Fu et al. 2025), kept incrementally.

Token confidence C_i = -(1/k) * sum of the log-probabilities of the top-k alternative
tokens at position i: a peaked distribution puts very little mass on alternatives, so
C_i is large when the model is sure. Group confidence = mean C_i over a sliding window
of the last `window` tokens; a trace's *lowest* group confidence catches the moment
its reasoning wobbled, which predicts wrong answers better than the trace mean.

When the backend returns no top-k alternatives, C_i falls back to the sampled token's
own log-probability (also "higher = surer", on a different scale); one request never
mixes the two because every sample of a policy asks for the same `top_logprobs`.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Sequence


def token_confidence(top: Sequence[tuple[int, float]] | None, sampled_logprob: float) -> float:
    if top:
        return -sum(lp for _, lp in top) / len(top)
    return sampled_logprob


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated q-th percentile (0..100) of a non-empty sequence."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class ConfidenceTracker:
    """Sliding-window group confidence of one growing trace."""

    def __init__(self, window: int) -> None:
        self.window = max(1, window)
        self.tokens = 0
        self.used_top_k = False
        self._win: deque[float] = deque()
        self._win_sum = 0.0
        self._all_sum = 0.0
        self.lowest_group: float | None = None  # min over full windows seen so far

    def update(self, logprobs: Sequence[float],
               top_logprobs: Sequence[Sequence[tuple[int, float]]] | None) -> None:
        """Consume the positions added since the last call."""
        for i in range(self.tokens, len(logprobs)):
            top = top_logprobs[i] if top_logprobs is not None and i < len(top_logprobs) else None
            self.used_top_k = self.used_top_k or bool(top)
            c = token_confidence(top, logprobs[i])
            self._win.append(c)
            self._win_sum += c
            self._all_sum += c
            if len(self._win) > self.window:
                self._win_sum -= self._win.popleft()
            if len(self._win) == self.window:
                g = self._win_sum / self.window
                self.lowest_group = g if self.lowest_group is None else min(self.lowest_group, g)
        self.tokens = max(self.tokens, len(logprobs))

    @property
    def full(self) -> bool:
        return len(self._win) == self.window

    @property
    def current_group(self) -> float | None:
        """Confidence of the latest window (partial while the trace is shorter)."""
        return (self._win_sum / len(self._win)) if self._win else None

    @property
    def trace_confidence(self) -> float | None:
        """Lowest full-window group confidence; the plain mean for short traces."""
        if self.lowest_group is not None:
            return self.lowest_group
        return (self._all_sum / self.tokens) if self.tokens else None

    def vote_weight(self) -> float:
        """A positive voting weight that grows with confidence."""
        c = self.trace_confidence
        if c is None:
            return 0.0
        return max(c, 1e-6) if self.used_top_k else math.exp(c)
