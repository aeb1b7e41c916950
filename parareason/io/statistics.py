"""How sure a comparison of policies is: bootstrap confidence intervals and the SC@k curve.

Used by `parareason eval`, `parareason replay` and `parareason bench policies`, so all
three report the same figures the same way:

* `accuracy_ci`: the 95% bootstrap CI of one policy's accuracy (questions resampled);
* `paired_difference_ci`: the 95% bootstrap CI of the accuracy difference between two
  policies on the same questions. Paired: one resample draws question indices and takes
  both policies' outcomes on them (`scipy.stats.bootstrap(..., paired=True)`), so the
  questions' difficulty cancels out; two identical policies get exactly [0, 0];
* `sc_at_k_curve`: self-consistency at k samples drawn from the baseline's own samples,
  so a policy can be placed against SC *at the same token cost* (the curve of
  Wang et al.'s self-consistency paper, accuracy vs sampled paths, here vs tokens).

Intervals are scipy's BCa bootstrap (its default method; the percentile interval where
BCa is undefined) with 9,999 resamples and a fixed seed, so a rerun prints the same
numbers. Degenerate data (every value equal) has the point itself as its interval.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0
SC_K = (1, 2, 4, 8, 16)  # then further doublings, and the baseline's own n, as its samples allow
SC_SUBSETS = 64  # random k-subsets of a question's samples averaged per point


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Any, point: float, *, paired: bool,
               confidence: float, seed: int) -> tuple[float, float] | None:
    from scipy.stats import bootstrap

    if len(data[0]) < 2:
        return None  # one question says nothing about the spread
    deltas = data[0] - data[1] if paired else data[0]
    if np.ptp(deltas) == 0:  # every resample gives the point itself (BCa is undefined there)
        return (point, point)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():  # a near-degenerate BCa is caught below, not printed
            warnings.simplefilter("ignore")
            res = bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=RESAMPLES,
                            confidence_level=confidence, method=method, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return (lo, hi)
    return None


def accuracy_ci(correct: Sequence[bool], *, confidence: float = CONFIDENCE,
                seed: int = SEED) -> tuple[float, float] | None:
    """Bootstrap CI of the share of True in `correct` (one entry per graded question);
    None with fewer than two questions."""
    x = np.asarray(correct, dtype=float)
    return _bootstrap((x,), np.mean, float(x.mean()) if len(x) else 0.0, paired=False,
                      confidence=confidence, seed=seed)


def paired_difference_ci(a: Sequence[bool], b: Sequence[bool], *, confidence: float = CONFIDENCE,
                         seed: int = SEED) -> tuple[float, tuple[float, float] | None]:
    """Accuracy of `a` minus accuracy of `b` (entry i of both is the same question), and
    the paired bootstrap CI of that difference."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes need the same questions: {len(x)} vs {len(y)}")
    point = float(x.mean() - y.mean()) if len(x) else 0.0
    return point, _bootstrap((x, y), _mean_difference, point, paired=True, confidence=confidence, seed=seed)


@dataclass
class ScPoint:
    """SC@k: accuracy of a majority vote over k of the baseline's samples, and the mean
    generated tokens of those k samples per question."""
    k: int
    accuracy: float
    tokens_per_prompt: float
    questions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Samples:
    """One graded question's samples as the vote sees them (answer None: does not vote)."""
    answers: list[str | None]
    tokens: list[int]
    reference: str


def field_of(r: Any, name: str) -> Any:
    """A field of a Result or of its JSON dict (results read back from a file)."""
    return r.get(name) if isinstance(r, Mapping) else getattr(r, name)


def question_samples(result: Any) -> Samples | None:
    """A Result's samples: its root threads, each with its whole subtree's tokens. A sample
    votes as self-consistency counts it (finished with an answer; policies/common.py
    `answered`). None for an ungraded question or one without samples."""
    from parareason.runtime.status import Status

    reference = field_of(result, "reference")
    if reference is None or field_of(result, "correct") is None:
        return None
    threads = [t if isinstance(t, Mapping) else asdict(t) for t in field_of(result, "threads") or []]
    children: dict[str | None, list[dict[str, Any]]] = {}
    for t in threads:
        children.setdefault(t["parent"], []).append(t)

    def subtree_tokens(t: dict[str, Any]) -> int:
        return int(t["tokens"]) + sum(subtree_tokens(c) for c in children.get(t["id"], []))

    roots = children.get(None, [])
    if not roots:
        return None
    return Samples(answers=[t["answer"] if t["status"] == Status.FINISHED else None for t in roots],
                   tokens=[subtree_tokens(t) for t in roots], reference=str(reference))


def sc_k_values(samples: int) -> list[int]:
    """1, 2, 4, 8, 16, … up to `samples`, and `samples` itself (the curve ends at SC@n)."""
    ks = [k for k in SC_K if k <= samples]
    while ks and ks[-1] * 2 <= samples:
        ks.append(ks[-1] * 2)
    return ks + [samples] if ks and ks[-1] != samples else ks


def answer_classes(answers: Sequence[str | None], reference: str) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's answer class (-1: does not vote) and whether each class is right.
    Classes are self-consistency's: grading.vote's grouping of math-equivalent answers,
    made once over all of a question's samples so every k-subset votes on the same ones."""
    from parareason.grading import answers_equal, is_correct
    from parareason.grading.vote import group_answers

    groups = group_answers(answers, same=answers_equal)
    labels = np.full(len(answers), -1)
    for c, g in enumerate(groups):
        labels[g.members] = c
    return labels, np.array([bool(is_correct(g.answer, reference)) for g in groups], dtype=float)


def vote_credits(labels: np.ndarray, right: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The majority vote of each draw (a row of sample indices): 1 if right, 0 if wrong or
    nobody voted; a tie between classes scores the share of tied classes that are right
    (a uniformly random tie-break's expected outcome: Results keep no logprobs for
    self-consistency's own tie-break)."""
    if right.size == 0:
        return np.zeros(len(draws))
    counts = (labels[draws][..., None] == np.arange(right.size)).sum(axis=1)  # (draws, classes)
    top = counts.max(axis=1, keepdims=True)
    tied = (counts == top) & (top > 0)
    n_tied = tied.sum(axis=1)
    return np.where(n_tied > 0, (tied * right).sum(axis=1) / np.maximum(n_tied, 1), 0.0)


def vote_credit(answers: Sequence[str | None], reference: str) -> float:
    """`vote_credits` of one vote over all of `answers`."""
    labels, right = answer_classes(answers, reference)
    return float(vote_credits(labels, right, np.arange(len(answers))[None, :])[0])


def _subsets(m: int, k: int, subsets: int, rng: np.random.Generator) -> np.ndarray:
    """All k-subsets of range(m) when there are at most `subsets`, else `subsets` uniform random ones."""
    if math.comb(m, k) <= subsets:
        return np.array(list(itertools.combinations(range(m), k)), dtype=int).reshape(-1, k)
    return np.argsort(rng.random((subsets, m)), axis=1)[:, :k]


def sc_at_k_curve(results: Sequence[Any], *, subsets: int = SC_SUBSETS, seed: int = SEED) -> list[ScPoint]:
    """The SC@k curve from one policy's Results (self-consistency's samples): for each k,
    the mean `vote_credits` over k-subsets of each question's samples (all of them where
    there are at most `subsets`, else `subsets` drawn at random with a fixed seed),
    against the mean generated tokens of those k samples. k runs up to the fewest
    samples any graded question has."""
    questions = [q for q in (question_samples(r) for r in results) if q is not None]
    if not questions:
        return []
    classes = [answer_classes(q.answers, q.reference) for q in questions]
    rng = np.random.default_rng(seed)
    points = []
    for k in sc_k_values(min(len(q.answers) for q in questions)):
        accuracy, tokens = [], []
        for q, (labels, right) in zip(questions, classes):
            draws = _subsets(len(q.answers), k, subsets, rng)
            accuracy.append(float(vote_credits(labels, right, draws).mean()))
            tokens.append(float(np.asarray(q.tokens)[draws].sum(axis=1).mean()))
        points.append(ScPoint(k=k, accuracy=round(float(np.mean(accuracy)), 4),
                              tokens_per_prompt=round(float(np.mean(tokens)), 1), questions=len(questions)))
    return points


END_TOLERANCE = 1e-3  # in log tokens: 0.1%


def sc_accuracy_at(curve: Sequence[ScPoint], tokens_per_prompt: float) -> float | None:
    """Self-consistency's accuracy at this token cost: the SC@k curve interpolated linearly
    in log tokens (k doubles from point to point); None outside the curve's range, where
    it would be a guess. The ends count as inside to 0.1%: the curve's token counts are
    rounded, and a policy that spends exactly SC@16's tokens must still get SC@16's accuracy."""
    if len(curve) < 2 or tokens_per_prompt <= 0:
        return None
    x = np.log([p.tokens_per_prompt for p in curve])
    t = float(np.log(tokens_per_prompt))
    if t < x[0] - END_TOLERANCE or t > x[-1] + END_TOLERANCE:
        return None
    return round(float(np.interp(t, x, [p.accuracy for p in curve])), 4)


def method_note() -> dict[str, Any]:
    """How the intervals were made, for summary.json's meta."""
    return {"confidence": CONFIDENCE, "method": "BCa bootstrap (scipy.stats.bootstrap)", "resamples": RESAMPLES,
            "seed": SEED, "paired": "question indices resampled jointly for differences",
            "sc_at_k_subsets": SC_SUBSETS}
