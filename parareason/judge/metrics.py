"""Judge quality metrics: AUROC and precision/recall at a threshold (numpy only).

AUROC is computed as the Mann-Whitney U statistic with average ranks for ties,
which equals the area under the ROC curve with ties counted as half.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auroc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError("scores and labels differ in length")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass
class ThresholdReport:
    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    predicted_positive: int
    true_positive: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def at_threshold(scores: Sequence[float], labels: Sequence[int | bool], threshold: float) -> ThresholdReport:
    """Precision/recall of 'same answer' when predicting positive at score > threshold
    (the rule DeepPrune prunes by, so an 'unknown' 0.5 is not a positive at 0.5)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pred = s > threshold
    tp = int((pred & y).sum())
    n_pred = int(pred.sum())
    n_pos = int(y.sum())
    precision = tp / n_pred if n_pred else float("nan")
    recall = tp / n_pos if n_pos else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if n_pred and n_pos and (precision + recall) > 0 else 0.0
    accuracy = float((pred == y).mean()) if len(y) else float("nan")
    return ThresholdReport(threshold, precision, recall, f1, accuracy, n_pred, tp)


def threshold_for_precision(scores: Sequence[float], labels: Sequence[int | bool], min_precision: float) -> float:
    """Lowest threshold (rule: positive when score > threshold) whose precision reaches
    `min_precision`: DeepPrune prunes only when 'same answer' is likely, so precision
    matters more than recall. The threshold lies halfway between the last score kept
    and the next lower one. Returns +inf when no threshold reaches it."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if len(s) == 0:
        return float("inf")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    n_pred = np.arange(1, len(s) + 1)
    # Only positions where the score changes are valid cut points (ties predict together).
    last_of_value = np.append(s_sorted[1:] != s_sorted[:-1], True)
    ok = last_of_value & (tp / n_pred >= min_precision)
    if not ok.any():
        return float("inf")
    i = int(np.nonzero(ok)[0][-1])
    lower = s_sorted[i + 1] if i + 1 < len(s) else s_sorted[i] - 1e-6
    return float((s_sorted[i] + lower) / 2.0)
