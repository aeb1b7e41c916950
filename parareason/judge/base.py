"""The judge interface: will two reasoning traces end with the same final answer?

A judge maps a pair of (possibly partial) trace texts to a probability in [0, 1].
DeepPrune uses it online to prune traces that duplicate a running one, and
`parareason judge eval` measures it offline (AUROC) on recorded traces.

Judges are symmetric in intent (score(a, b) ~ score(b, a)); implementations that are
not symmetric by construction average both orders.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence


class Judge(ABC):
    name: ClassVar[str] = "judge"

    @abstractmethod
    def score(self, trace_a: str, trace_b: str) -> float:
        """Probability that both traces end with the same final answer."""

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Batched `score`; override when a batch is cheaper than a loop (models)."""
        return [self.score(a, b) for a, b in pairs]

    def score_against(self, trace: str, others: Sequence[str]) -> list[float]:
        """Score one trace against several (DeepPrune: a new trace vs cluster representatives)."""
        return self.score_many([(trace, o) for o in others])


def clamp_probability(p: float) -> float:
    """Keep a score a valid probability (NaN counts as 'unknown')."""
    if p != p:  # NaN
        return 0.5
    return min(1.0, max(0.0, float(p)))
