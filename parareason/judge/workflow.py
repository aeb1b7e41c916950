"""Train and evaluate judges on recorded traces (what `parareason judge` runs).

Splits are by question: `train_judge` keeps the held-out question ids in the head
file, and `evaluate_judge` scores only pairs from questions the head never saw.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from parareason.judge.base import Judge
from parareason.judge.metrics import at_threshold, auroc, auroc_ci, threshold_for_precision
from parareason.judge.pairs import Pair, QuestionTraces, build_pairs, split_by_question


@dataclass
class JudgeTrainSettings:
    eval_fraction: float = 0.25  # questions held out for `judge eval`
    val_fraction: float = 0.2  # of the training questions: picks the prune threshold
    prefix_chars: tuple[int, ...] = (400, 800, 0)  # 0 = full trace
    max_pairs_per_question: int | None = 64
    min_precision: float = 0.9  # threshold = lowest score reaching this precision on val
    seed: int = 0
    feature_set: str = "numbers"  # trained head's pair features: "numbers" or "embedding" (see trained.py)


@dataclass
class TrainReport:
    n_train_questions: int
    n_val_questions: int
    n_eval_questions: int
    n_train_pairs: int
    positive_rate: float
    loss_first: float
    loss_last: float
    val_auroc: float
    threshold: float
    losses: list[float] = field(default_factory=list)
    best_epoch: int | None = None  # weights kept from this epoch (early stopping on validation)


def _labels(pairs: Sequence[Pair]) -> np.ndarray:
    return np.array([p.label for p in pairs], dtype=np.float32)


def train_judge(questions: Sequence[QuestionTraces], out: str | Path, settings: JudgeTrainSettings,
                train_config: Any = None, source: str = "") -> TrainReport:
    """Train a TrainedJudge head on the training questions' pairs and save it to `out`."""
    from parareason.judge.trained import PairFeaturizer, TrainConfig, TrainedJudge, train_head
    from parareason.judge.embedding import shared_encoder

    train_config = train_config or TrainConfig(seed=settings.seed)
    train_qs, eval_qs = split_by_question(questions, settings.eval_fraction, settings.seed)
    fit_qs, val_qs = (split_by_question(train_qs, settings.val_fraction, settings.seed + 1)
                      if len(train_qs) >= 5 else (train_qs, []))
    fit_pairs = build_pairs(fit_qs, settings.prefix_chars, settings.max_pairs_per_question, settings.seed)
    y = _labels(fit_pairs)
    if len(fit_pairs) == 0 or y.min() == y.max():
        raise ValueError(f"training pairs need both labels (got {len(fit_pairs)} pairs, "
                         f"{int(y.sum()) if len(y) else 0} same-answer); record more traces per question")
    featurize = PairFeaturizer(shared_encoder(), settings.feature_set)
    x = featurize([(p.a, p.b) for p in fit_pairs], both_orders=True)
    val_pairs = build_pairs(val_qs, settings.prefix_chars, settings.max_pairs_per_question, settings.seed)
    # Validation questions stop training early (best val loss) and then pick the threshold.
    val = (featurize([(p.a, p.b) for p in val_pairs]), _labels(val_pairs)) if val_pairs else None
    head, history = train_head(x, np.concatenate([y, y]), train_config, val=val)
    judge = TrainedJudge(head, featurize.encoder, feature_set=settings.feature_set)

    pick_from = val_pairs if len(set(p.label for p in val_pairs)) == 2 else fit_pairs  # in-sample fallback
    pick_scores = judge.score_many([(p.a, p.b) for p in pick_from])
    threshold = threshold_for_precision(pick_scores, [p.label for p in pick_from], settings.min_precision)
    judge.threshold = threshold if np.isfinite(threshold) else 0.5
    val_auc = auroc(pick_scores, [p.label for p in pick_from]) if pick_from is val_pairs else float("nan")
    judge.meta = {
        "trained_on": source, "settings": {**asdict(settings), "prefix_chars": list(settings.prefix_chars)},
        "train_config": asdict(train_config),
        "train_ids": sorted(q.id for q in train_qs), "eval_ids": sorted(q.id for q in eval_qs),
        "threshold_picked_on": "validation questions" if pick_from is val_pairs else "training pairs",
        "val_auroc": val_auc, "losses": history.epoch_loss, "val_losses": history.val_loss,
        "best_epoch": history.best_epoch,
    }
    judge.save(out)
    return TrainReport(len(fit_qs), len(val_qs), len(eval_qs), len(fit_pairs), float(y.mean()),
                       history.epoch_loss[0], history.epoch_loss[-1], val_auc, judge.threshold,
                       history.epoch_loss, history.best_epoch)


@dataclass
class EvalReport:
    judge: str
    n_questions: int
    n_pairs: int
    positive_rate: float
    auroc: float
    threshold: float
    at_threshold: dict[str, float]
    by_prefix: dict[str, dict[str, Any]]  # prefix length -> {"pairs", "auroc", "auroc_ci"}
    auroc_ci: tuple[float, float] = (float("nan"), float("nan"))  # 95%, resampling questions

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_pairs(judge: Judge, questions: Sequence[QuestionTraces], pairs: Sequence[Pair]) -> list[float]:
    """Judge scores of `pairs`. A judge that reads the problem statement (the LLM judge's
    `for_question`) scores each question's pairs with that question in its prompt."""
    for_question = getattr(judge, "for_question", None)
    if for_question is None:
        return judge.score_many([(p.a, p.b) for p in pairs])
    text = {q.id: q.question for q in questions}
    scores = [0.0] * len(pairs)
    by_question: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_question.setdefault(p.question_id, []).append(i)
    for qid, idx in by_question.items():
        for i, sc in zip(idx, for_question(text.get(qid)).score_many([(pairs[i].a, pairs[i].b) for i in idx])):
            scores[i] = sc
    return scores


def evaluate_judge(judge: Judge, questions: Sequence[QuestionTraces], threshold: float,
                   prefix_chars: Sequence[int], max_pairs_per_question: int | None = 64,
                   seed: int = 0) -> EvalReport:
    pairs = build_pairs(questions, prefix_chars, max_pairs_per_question, seed)
    scores = score_pairs(judge, questions, pairs)
    labels = [p.label for p in pairs]
    groups = [p.question_id for p in pairs]
    by_prefix = {}
    for n in prefix_chars:
        idx = [i for i, p in enumerate(pairs) if p.prefix_chars == n]
        sub = ([scores[i] for i in idx], [labels[i] for i in idx], [groups[i] for i in idx])
        by_prefix["full" if n == 0 else str(n)] = {
            "pairs": len(idx), "auroc": auroc(sub[0], sub[1]) if idx else float("nan"),
            "auroc_ci": auroc_ci(*sub, seed=seed) if idx else (float("nan"), float("nan"))}
    return EvalReport(judge=getattr(judge, "name", type(judge).__name__), n_questions=len(questions),
                      n_pairs=len(pairs), positive_rate=float(np.mean(labels)) if labels else float("nan"),
                      auroc=auroc(scores, labels) if pairs else float("nan"), threshold=threshold,
                      at_threshold=at_threshold(scores, labels, threshold).to_dict() if pairs else {},
                      by_prefix=by_prefix,
                      auroc_ci=auroc_ci(scores, labels, groups, seed=seed) if pairs else (float("nan"), float("nan")))


def held_out(questions: Sequence[QuestionTraces], train_ids: Sequence[str]) -> list[QuestionTraces]:
    seen = set(train_ids)
    return [q for q in questions if q.id not in seen]
