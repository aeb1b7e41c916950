"""The judge interface: will two reasoning traces end with the same final answer?

A judge maps a pair of (possibly partial) trace texts to a probability in [0, 1].
DeepPrune uses it online to prune traces that duplicate a running one, and
`parareason judge eval` measures it offline (AUROC) on recorded traces.

Judges are symmetric in intent (score(a, b) ~ score(b, a)); implementations that are
not symmetric by construction average both orders.

Inputs are prefixes of equal length (DeepPrune's truncation: two traces are compared
over their first N tokens): `score_against`, the online entry point, cuts both texts to
the shorter one's length with `equal_prefixes` for every judge, and the offline pairs
(`judge/pairs.py`) are built the same way. Length is counted in characters, the unit the
pairs and `prefix_chars` use; judges with a length limit keep the *start* of a text.

Online, the common length is rounded down to a multiple of `ONLINE_PREFIX_STEP`
characters (deviation from an exact cut, ~16 tokens at most): a representative is then
cut at the same few lengths by every newcomer, so embedding judges find its prefix in
their cache instead of re-encoding both texts of every comparison (DeepPrune replay went
from ~25 to 4.3 s a question on a shared 2-core CPU; BENCHMARKS.md, dev sweep).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence


ONLINE_PREFIX_STEP = 64  # characters; see the module docstring


def equal_prefixes(a: str, b: str, max_chars: int | None = None, step: int = 1) -> tuple[str, str]:
    """Both texts cut to the same length: the shorter one's (and at most `max_chars`),
    rounded down to a multiple of `step` when that leaves at least one step."""
    n = min(len(a), len(b))
    if max_chars is not None and max_chars > 0:
        n = min(n, max_chars)
    if step > 1 and n >= step:
        n -= n % step
    return a[:n], b[:n]


class Judge(ABC):
    name: ClassVar[str] = "judge"

    @abstractmethod
    def score(self, trace_a: str, trace_b: str) -> float:
        """Probability that both traces end with the same final answer."""

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Batched `score`; override when a batch is cheaper than a loop (models)."""
        return [self.score(a, b) for a, b in pairs]

    def score_against(self, trace: str, others: Sequence[str]) -> list[float]:
        """Score one trace against several (DeepPrune: a new trace vs cluster
        representatives), each pair cut to equal-length prefixes."""
        return self.score_many([equal_prefixes(trace, o, step=ONLINE_PREFIX_STEP) for o in others])


def clamp_probability(p: float) -> float:
    """Keep a score a valid probability (NaN counts as 'unknown')."""
    if p != p:  # NaN
        return 0.5
    return min(1.0, max(0.0, float(p)))
