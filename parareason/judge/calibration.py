"""Logistic calibration: turn a raw similarity into a probability, sigmoid(a*x + b).

Fitted on labelled pairs by Newton's method (two parameters, a few iterations), saved
and loaded as JSON so a calibrated embedding judge is reproducible.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class LogisticCalibration:
    # Default when uncalibrated: p = 0.5 at cos = 0.95, 0.12 at 0.90, 0.88 at 1.0, so the
    # uncalibrated judge prunes only near-duplicates. Why so strict: MiniLM cosine barely
    # separates answers of traces of the *same* question; on recorded Qwen2.5-0.5B GSM8K
    # traces (2 questions x 16, 400-char prefixes) the median cosine was 0.91 for
    # same-answer pairs and 0.87 for different-answer pairs. Fit a calibration on your
    # own traces (`parareason judge train --kind calibration`) or use the trained judge.
    a: float = 40.0
    b: float = -38.0
    fitted_on: int = 0  # number of pairs it was fitted on (0 = defaults)

    def __call__(self, x: float) -> float:
        z = self.a * x + self.b
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def apply(self, xs: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(xs, dtype=np.float64) + self.b)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LogisticCalibration":
        return cls(**json.loads(Path(path).read_text()))


def fit_logistic(xs: Sequence[float], labels: Sequence[int | bool], l2: float = 1e-3,
                 iterations: int = 50) -> LogisticCalibration:
    """Maximum-likelihood (lightly L2-regularised) fit of sigmoid(a*x + b) to labels."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(x) == 0 or y.min() == y.max():
        raise ValueError("calibration needs pairs of both classes")
    X = np.stack([x, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        grad = X.T @ (p - y) + l2 * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticCalibration(a=float(w[0]), b=float(w[1]), fitted_on=len(x))
