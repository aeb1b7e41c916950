"""Judge quality metrics: AUROC with a by-question bootstrap CI, and precision/recall
at a threshold.

AUROC is scikit-learn's `roc_auc_score` (ties count as half). Its CI resamples
*questions*, not pairs: the pairs of one question share traces, so resampling pairs
would treat correlated pairs as independent and make the interval too narrow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Hashable, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def auroc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError("scores and labels differ in length")
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def auroc_ci(scores: Sequence[float], labels: Sequence[int | bool], groups: Sequence[Hashable],
             confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the AUROC, resampling groups (questions) with
    replacement; (nan, nan) with fewer than two groups or a single class."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    keys = list(dict.fromkeys(groups))
    if len(keys) < 2 or y.all() or not y.any():
        return float("nan"), float("nan")
    index = {k: i for i, k in enumerate(keys)}
    gid = np.array([index[g] for g in groups])
    members = [np.nonzero(gid == i)[0] for i in range(len(keys))]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        take = np.concatenate([members[i] for i in rng.integers(0, len(keys), len(keys))])
        if y[take].all() or not y[take].any():
            continue  # a resample with one class has no AUROC
        stats.append(roc_auc_score(y[take], s[take]))
    if not stats:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


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
