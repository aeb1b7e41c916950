"""Trained judge: a small MLP over pair features, trained with focal loss (DeepPrune).

Features of a pair (a, b) with L2-normalised MiniLM embeddings ea, eb:
    [ea, eb, ea*eb, |ea-eb|, cos(ea, eb), len_a, len_b]    len = log1p(chars) / 10
plus, with feature set "numbers" (the default), what the two traces computed: Jaccard
and overlap of the sets of numbers they wrote, whether their last numbers agree and
whether both already state the same answer. Two partial solutions that reached the
same intermediate results tend to end alike, and a sentence embedding barely sees
digits.
The head sees ordered pairs; training adds both orders and scoring averages them, so
the judge is symmetric. Same-answer pairs are usually the majority (a model often
agrees with itself), so the minority class is oversampled and focal loss focuses the
gradient on the hard pairs, as DeepPrune does.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from parareason.grading import explicit_answer
from parareason.grading.extract import NUMBER_RE
from parareason.judge.base import Judge, clamp_probability
from parareason.judge.embedding import EncoderConfig, SentenceEncoder, shared_encoder


def length_feature(text: str) -> float:
    return math.log1p(len(text)) / 10.0


def pair_features(ea: np.ndarray, eb: np.ndarray, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
    """[n, 4*dim + 3] float32 features of ordered pairs."""
    cos = np.einsum("ij,ij->i", ea, eb)[:, None]
    return np.concatenate([ea, eb, ea * eb, np.abs(ea - eb), cos, len_a[:, None], len_b[:, None]],
                          axis=1).astype(np.float32)


NUMBER_FEATURES = 4
FEATURE_SETS = ("embedding", "numbers")  # heads saved before "numbers" existed are "embedding"


def _numbers(text: str) -> list[str]:
    return [m.replace(",", "") for m in NUMBER_RE.findall(text)]


def number_features(a: str, b: str) -> list[float]:
    """[Jaccard, overlap coefficient, last numbers equal, same stated answer] of a pair."""
    na, nb = _numbers(a), _numbers(b)
    sa, sb = set(na), set(nb)
    inter = len(sa & sb)
    jaccard = inter / len(sa | sb) if sa or sb else 0.0
    overlap = inter / min(len(sa), len(sb)) if sa and sb else 0.0
    last = float(bool(na) and bool(nb) and na[-1] == nb[-1])
    ans_a, ans_b = explicit_answer(a), explicit_answer(b)
    stated = float(ans_a is not None and ans_a == ans_b)
    return [jaccard, overlap, last, stated]


def feature_dim(embedding_dim: int, feature_set: str = "numbers") -> int:
    return 4 * embedding_dim + 3 + (NUMBER_FEATURES if feature_set == "numbers" else 0)


@dataclass
class HeadConfig:
    input_dim: int
    hidden: int = 256
    dropout: float = 0.1


class PairHead(nn.Module):
    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.input_dim, config.hidden), nn.GELU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden // 2), nn.GELU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # logits


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
               alpha: float = 0.5) -> torch.Tensor:
    """Mean binary focal loss: -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017).
    gamma = 0 and alpha = 0.5 give half the binary cross-entropy."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    gamma: float = 2.0
    alpha: float = 0.5  # class balance comes from oversampling; alpha stays neutral
    oversample: bool = True
    hidden: int = 256
    dropout: float = 0.1
    seed: int = 0
    patience: int = 5  # with validation data: stop after this many epochs without a better val loss


def balanced_indices(labels: np.ndarray, rng: random.Random) -> list[int]:
    """Every example once, plus minority-class examples drawn again until classes match."""
    pos = [i for i, y in enumerate(labels) if y > 0.5]
    neg = [i for i, y in enumerate(labels) if y <= 0.5]
    minority, majority = (pos, neg) if len(pos) < len(neg) else (neg, pos)
    extra = [rng.choice(minority) for _ in range(len(majority) - len(minority))] if minority else []
    idx = pos + neg + extra
    rng.shuffle(idx)
    return idx


@dataclass
class TrainHistory:
    epoch_loss: list[float] = field(default_factory=list)  # focal loss over all training data, eval mode
    val_loss: list[float] = field(default_factory=list)  # the same on validation pairs (when given)
    best_epoch: int | None = None  # the epoch whose weights were kept (None: the last, no validation)


def _tensors(features: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(np.asarray(features, dtype=np.float32)),
            torch.from_numpy(np.asarray(labels, dtype=np.float32)))


def train_head(features: np.ndarray, labels: np.ndarray, config: TrainConfig | None = None,
               val: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[PairHead, TrainHistory]:
    """Train a PairHead on ordered-pair features; both classes must be present.

    With `val` (features, labels of held-out questions) training keeps the weights of the
    epoch with the lowest validation loss and stops `patience` epochs after it: the head
    otherwise memorises its few hundred questions (training loss near 0, scores near 1)."""
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    x, y = _tensors(features, labels)
    head = PairHead(HeadConfig(input_dim=x.shape[1], hidden=config.hidden, dropout=config.dropout))
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = TrainHistory()

    def loss_on(xs: torch.Tensor, ys: torch.Tensor) -> float:
        head.eval()
        with torch.no_grad():
            return float(focal_loss(head(xs), ys, config.gamma, config.alpha))

    xv, yv = _tensors(*val) if val is not None and len(val[1]) else (None, None)
    best_state: dict[str, torch.Tensor] | None = None

    def record_epoch(epoch: int) -> bool:
        """Log the losses; True when validation says to stop."""
        nonlocal best_state
        history.epoch_loss.append(loss_on(x, y))
        if xv is None:
            return False
        history.val_loss.append(loss_on(xv, yv))
        if history.best_epoch is None or history.val_loss[-1] < history.val_loss[history.best_epoch]:
            history.best_epoch = epoch
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        return epoch - history.best_epoch >= config.patience

    record_epoch(0)
    for epoch in range(1, config.epochs + 1):
        order = balanced_indices(y.numpy(), rng) if config.oversample else rng.sample(range(len(y)), len(y))
        head.train()
        for i in range(0, len(order), config.batch_size):
            b = torch.tensor(order[i:i + config.batch_size])
            loss = focal_loss(head(x[b]), y[b], config.gamma, config.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if record_epoch(epoch):
            break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, history


class PairFeaturizer:
    """Texts -> ordered-pair features (embeddings cached by the encoder)."""

    def __init__(self, encoder: SentenceEncoder, feature_set: str = "numbers"):
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {feature_set!r} (known: {', '.join(FEATURE_SETS)})")
        self.encoder = encoder
        self.feature_set = feature_set

    def __call__(self, pairs: Sequence[tuple[str, str]], both_orders: bool = False) -> np.ndarray:
        if not pairs:
            return np.zeros((0, feature_dim(self.encoder.dim, self.feature_set)), dtype=np.float32)
        emb = self.encoder.encode([t for p in pairs for t in p])
        ea, eb = emb[0::2], emb[1::2]
        la = np.array([length_feature(a) for a, _ in pairs], dtype=np.float32)
        lb = np.array([length_feature(b) for _, b in pairs], dtype=np.float32)
        f, g = pair_features(ea, eb, la, lb), pair_features(eb, ea, lb, la)
        if self.feature_set == "numbers":  # symmetric, so both orders share them
            nums = np.array([number_features(a, b) for a, b in pairs], dtype=np.float32)
            f, g = np.concatenate([f, nums], axis=1), np.concatenate([g, nums], axis=1)
        return np.concatenate([f, g]) if both_orders else f


class TrainedJudge(Judge):
    name: ClassVar[str] = "trained"

    def __init__(self, head: PairHead, encoder: SentenceEncoder | None = None,
                 threshold: float = 0.5, meta: dict[str, Any] | None = None, feature_set: str = "numbers"):
        self.head = head.eval()
        self.featurize = PairFeaturizer(encoder or shared_encoder(), feature_set)
        self.threshold = threshold  # suggested prune threshold, chosen at training time
        self.meta = meta or {}

    def score(self, trace_a: str, trace_b: str) -> float:
        return self.score_many([(trace_a, trace_b)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        f = self.featurize(pairs, both_orders=True)
        with torch.no_grad():
            p = torch.sigmoid(self.head(torch.from_numpy(f))).numpy()
        n = len(pairs)
        return [clamp_probability(v) for v in (p[:n] + p[n:]) / 2.0]

    def save(self, path: str | Path) -> None:
        enc = self.featurize.encoder.config
        torch.save({"format": "parareason-judge-head/1",
                    "head_config": asdict(self.head.config),
                    "state_dict": self.head.state_dict(),
                    "threshold": self.threshold,
                    "feature_set": self.featurize.feature_set,
                    "encoder": {"max_seq_length": enc.max_seq_length, "keep": enc.keep},
                    "meta": self.meta}, str(path))

    @classmethod
    def load(cls, path: str | Path, encoder: SentenceEncoder | None = None) -> "TrainedJudge":
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        head = PairHead(HeadConfig(**ckpt["head_config"]))
        head.load_state_dict(ckpt["state_dict"])
        if encoder is None:
            e = ckpt.get("encoder", {})
            encoder = shared_encoder(EncoderConfig(max_seq_length=int(e.get("max_seq_length", 256)),
                                                   keep=str(e.get("keep", "tail"))))
        return cls(head, encoder, threshold=float(ckpt.get("threshold", 0.5)), meta=ckpt.get("meta", {}),
                   feature_set=str(ckpt.get("feature_set", "embedding")))
