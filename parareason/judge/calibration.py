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
    # Default when uncalibrated: MiniLM cosine between two solutions of the same math
    # question is rarely below 0.6; p = 0.5 at cos = 0.85 and p = 0.88 at cos = 0.95
    # keeps the uncalibrated judge conservative (prunes only near-duplicates).
    a: float = 20.0
    b: float = -17.0
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
