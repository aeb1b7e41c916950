"""`parareason bench weights`: what each weight format costs in accuracy (embedded engine).

Two measurements, both against `full` (float32, the exact reference):

* **Distribution drift on a fixed text.** One GSM8K question in the chat template and
  the reference model's own greedy answer, teacher-forced through every format: the
  mean per-token KL(full || format) of the next-token distributions over the answer,
  the mean |logprob difference| of the answer's tokens, and how often the greedy
  (argmax) token agrees.
* **SC@k on the same recorded questions.** Given one trace file per format (`parareason
  record --weights F` of the same rows and seeds), SC@k per format against full, paired
  question by question (sc_compare.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parareason.io.summary import markdown_table
from parareason.models import DEFAULT_MODEL

FIXED_QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
                  "in May. How many clips did Natalia sell altogether in April and May?")


@dataclass
class WeightsBenchConfig:
    model: str = DEFAULT_MODEL
    formats: tuple[str, ...] = ("full", "float16", "int8", "q8")
    answer_tokens: int = 128  # greedy answer length teacher-forced through every format
    traces: dict[str, Path] = field(default_factory=dict)  # format -> trace file (same rows and seeds)
    k: int = 8
    out_path: str | Path = "BENCHMARKS.md"


@dataclass
class Drift:
    fmt: str
    kl: float  # mean KL(full || fmt) per answer token, nats
    abs_logprob_diff: float
    argmax_agreement: float


def _load(model: str, fmt: str):
    from parareason.backends.registry import load_backend

    return load_backend("embedded", model, dtype="float32", weights=fmt)


def _log_softmax_rows(engine: Any, ids: list[int]):
    """[len(ids), vocab] next-token log-distributions after each prefix (prompt scoring's forward)."""
    import torch

    from parareason.backends.embedded.prompt_scoring import position_logits

    logits = torch.cat([chunk for _, chunk in position_logits(engine.model, ids)])
    return torch.log_softmax(logits.float(), dim=-1)


def _greedy_answer(engine: Any, prompt_ids: list[int], tokens: int) -> list[int]:
    from parareason.backends.base import GenerationRequest, SamplingParams

    engine.submit(GenerationRequest("weights-bench", tuple(prompt_ids),
                                    SamplingParams(temperature=0.0, max_new_tokens=tokens)))
    out: list[int] = []
    while engine.has_work():
        for u in engine.step():
            out += u.token_ids or []
    return out


def measure_drift(cfg: WeightsBenchConfig) -> list[Drift]:
    """Teacher-force the full model's greedy answer through every format."""
    import torch

    ref = _load(cfg.model, "full")
    prompt = ref.tokenizer.chat_ids([{"role": "user", "content": FIXED_QUESTION}])
    ids = list(prompt) + _greedy_answer(ref, list(prompt), cfg.answer_tokens)
    span = slice(len(prompt) - 1, len(ids) - 1)  # positions that predict the answer's tokens
    targets = torch.tensor(ids[len(prompt):])
    base = _log_softmax_rows(ref, ids)[span]
    ref.close()
    drifts = []
    for fmt in cfg.formats:
        eng = _load(cfg.model, fmt) if fmt != "full" else None
        got = _log_softmax_rows(eng, ids)[span] if eng is not None else base
        if eng is not None:
            eng.close()
        kl = (base.exp() * (base - got)).sum(-1)
        rows = torch.arange(len(targets))
        diff = (base[rows, targets] - got[rows, targets]).abs()
        agree = (base.argmax(-1) == got.argmax(-1)).float()
        drifts.append(Drift(fmt, float(kl.mean()), float(diff.mean()), float(agree.mean())))
    return drifts


def run_weights_bench(cfg: WeightsBenchConfig) -> str:
    from parareason.bench.report import write_section
    from parareason.bench.sc_compare import sc_comparison

    drifts = measure_drift(cfg)
    body = [f"Model `{cfg.model}`, float32 activations. Drift: the fixed GSM8K question (chat template) and the "
            f"full model's greedy answer ({cfg.answer_tokens} tokens max), teacher-forced through each format.\n",
            markdown_table(["weights", "mean KL(full ‖ weights) per token", "mean abs logprob difference",
                            "argmax agreement"],
                           [[d.fmt, f"{d.kl:.4f}", f"{d.abs_logprob_diff:.4f}", f"{100 * d.argmax_agreement:.1f}%"]
                            for d in drifts])]
    if cfg.traces:
        body.append(sc_comparison(cfg.traces, cfg.k, base="full", label="weights"))
    md = "\n".join(body)
    write_section("Weight formats: accuracy (bench weights)", md, cfg.out_path)
    return md
