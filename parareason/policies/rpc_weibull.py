"""RPC's Reasoning Pruning (Zhou et al. 2025), matched to WNJXYK/RPC `compute_rpc.py`
(`weibull_pdf`, `mixture_pdf`, `neg_log_likelihood`,
`calculate_membership_probabilities` and the pruning loop of `wpc_evaluator`).

The paths' probabilities p_i = exp(mean token logprob) are modelled as a two-component
Weibull mixture, fitted by maximum likelihood with `scipy.optimize.minimize` from the
reference's start (w1, k1, lam1, k2, lam2) = (0.5, 1, 1, 1.5, 2) and bounds
w1 in [0.2, 0.8], the rest >= 0.01. The component with the larger Weibull mean
lam * Gamma(1 + 1/k) is the "high" one. A path is pruned when it is more likely to
belong to the low component *and* its probability is below the mean probability.

Deviation: when the optimiser returns non-finite parameters (degenerate data, e.g. every
probability equal) nothing is pruned, where the reference would compare NaNs (which
also prunes nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import gamma

def weibull_pdf(x: np.ndarray, k: float, lam: float) -> np.ndarray:
    """Weibull density, written out as the reference does (scipy.stats.weibull_min.pdf
    gives the same values but costs ~20x more per call inside the optimiser)."""
    with np.errstate(all="ignore"):
        return (k / lam) * (x / lam) ** (k - 1) * np.exp(-((x / lam) ** k))


INITIAL_GUESS = (0.5, 1.0, 1.0, 1.5, 2.0)
BOUNDS = ((0.2, 0.8), (0.01, None), (0.01, None), (0.01, None), (0.01, None))


@dataclass(frozen=True)
class WeibullMixture:
    w_high: float
    k_high: float
    lam_high: float
    k_low: float
    lam_low: float

    def membership(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(high | x), P(low | x)) for each probability in x."""
        hi = self.w_high * weibull_pdf(x, self.k_high, self.lam_high)
        lo = (1.0 - self.w_high) * weibull_pdf(x, self.k_low, self.lam_low)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_hi = hi / (hi + lo)
        return p_hi, 1.0 - p_hi


def weibull_mean(k: float, lam: float) -> float:
    return float(lam * gamma(1.0 + 1.0 / k))


def _neg_log_likelihood(params: np.ndarray, data: np.ndarray) -> float:
    w1, k1, lam1, k2, lam2 = params
    pdf = w1 * weibull_pdf(data, k1, lam1) + (1 - w1) * weibull_pdf(data, k2, lam2)
    with np.errstate(all="ignore"):
        return float(-np.sum(np.log(pdf)))


def fit_weibull_mixture(probabilities: Sequence[float]) -> WeibullMixture | None:
    """The reference's maximum-likelihood fit; None when it yields non-finite parameters."""
    data = np.asarray(probabilities, dtype=np.float64)
    if len(data) == 0:
        return None
    with np.errstate(all="ignore"):
        res = minimize(_neg_log_likelihood, np.array(INITIAL_GUESS), args=(data,), bounds=BOUNDS)
    w1, k1, lam1, k2, lam2 = (float(v) for v in res.x)
    if not all(np.isfinite([w1, k1, lam1, k2, lam2])):
        return None
    if weibull_mean(k1, lam1) < weibull_mean(k2, lam2):  # component 1 is the high one
        k1, lam1, k2, lam2, w1 = k2, lam2, k1, lam1, 1.0 - w1
    return WeibullMixture(w1, k1, lam1, k2, lam2)


def reasoning_prune_mask(probabilities: Sequence[float]) -> tuple[list[bool], WeibullMixture | None]:
    """True for each path RPC's Reasoning Pruning drops: in the low component and below the mean."""
    data = np.asarray(probabilities, dtype=np.float64)
    mix = fit_weibull_mixture(data)
    if mix is None:
        return [False] * len(data), None
    p_hi, p_lo = mix.membership(data)
    mean = float(np.mean(data))
    return [bool(a < b and x < mean) for a, b, x in zip(p_hi, p_lo, data)], mix
