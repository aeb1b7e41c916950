"""`parareason judge train|eval`: judges of "same final answer" on recorded traces."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from parareason.cli.options import (
    FiniteFloatRange, check_backend_args, model_options, open_engine, rows_option, select_rows,
)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _ci(ci: tuple[float, float]) -> str:
    return f"[95% CI {_fmt(ci[0])}, {_fmt(ci[1])}]"


@click.group()
def judge() -> None:
    """Train and evaluate same-answer judges (DeepPrune) on recorded traces."""


@judge.command()
@click.argument("traces", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to save: the head (.pt) for --kind trained, a calibration JSON for --kind calibration.")
@click.option("--kind", type=click.Choice(["trained", "calibration"]), default="trained", show_default=True,
              help="trained: MLP head with focal loss; calibration: fit sigmoid(a*cos+b) for the embedding judge.")
@click.option("--eval-fraction", type=FiniteFloatRange(min=0, max=1, max_open=True), default=0.25, show_default=True, help="Questions held out for `judge eval`.")
@click.option("--prefix-chars", default="400,800,full", show_default=True,
              help="Trace prefix lengths (characters) to build pairs at; 'full' = whole trace.")
@click.option("--max-pairs-per-question", type=int, default=64, show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--min-precision", type=FiniteFloatRange(min=0, max=1), default=0.9, show_default=True,
              help="The saved prune threshold is the lowest score reaching this precision on validation questions.")
@click.option("--features", "feature_set", type=click.Choice(["numbers", "embedding"]), default="numbers",
              show_default=True, help="Pair features of the trained head: embeddings + lengths, plus (numbers) "
                                      "the overlap of the numbers the two traces wrote.")
@click.option("--seed", type=int, default=0, show_default=True)
@rows_option
def train(traces: str, out: str, kind: str, eval_fraction: float, prefix_chars: str,
          max_pairs_per_question: int, epochs: int, min_precision: float, feature_set: str, seed: int,
          row_range: str | None) -> None:
    """Build labelled pairs (same final answer?) from TRACES, split by question, train, save."""
    from parareason.judge.pairs import parse_prefixes
    from parareason.judge.workflow import JudgeTrainSettings, train_judge

    questions = _load_traces(traces, row_range)
    if len(questions) < 2:
        raise click.ClickException(f"{traces}: {len(questions)} question(s); training needs at least 2 "
                                   "(the split is by question)")
    settings = JudgeTrainSettings(eval_fraction=eval_fraction, prefix_chars=parse_prefixes(prefix_chars),
                                  max_pairs_per_question=max_pairs_per_question,
                                  min_precision=min_precision, seed=seed, feature_set=feature_set)
    try:
        if kind == "calibration":
            _fit_calibration(questions, out, settings)
            return
        from parareason.judge.trained import TrainConfig

        r = train_judge(questions, out, settings, TrainConfig(epochs=epochs, seed=seed), source=traces)
    except ValueError as e:  # e.g. only one label among the training pairs
        raise click.ClickException(str(e)) from e
    click.echo(f"questions: {r.n_train_questions} train, {r.n_val_questions} validation, "
               f"{r.n_eval_questions} held out for eval")
    click.echo(f"pairs: {r.n_train_pairs} (same answer: {r.positive_rate:.1%})")
    click.echo(f"focal loss: {r.loss_first:.4f} -> {r.loss_last:.4f} over {len(r.losses) - 1} epochs"
               + (f"; weights of epoch {r.best_epoch} kept (lowest validation loss)" if r.best_epoch is not None else ""))
    click.echo(f"validation AUROC: {_fmt(r.val_auroc)}   threshold: {_fmt(r.threshold)}")
    click.echo(f"saved {out}")


def _fit_calibration(questions, out: str, settings) -> None:
    from parareason.judge.calibration import fit_logistic
    from parareason.judge.embedding import EmbeddingJudge
    from parareason.judge.pairs import build_pairs, split_by_question

    train_qs, eval_qs = split_by_question(questions, settings.eval_fraction, settings.seed)
    pairs = build_pairs(train_qs, settings.prefix_chars, settings.max_pairs_per_question, settings.seed)
    cos = EmbeddingJudge().cosine_many([(p.a, p.b) for p in pairs])
    cal = fit_logistic(cos, [p.label for p in pairs])
    cal.save(out)
    click.echo(f"calibration sigmoid({cal.a:.3f}*cos + {cal.b:.3f}) fitted on {cal.fitted_on} pairs "
               f"from {len(train_qs)} questions ({len(eval_qs)} held out with --seed {settings.seed}); saved {out}")


@judge.command("eval")
@click.argument("traces", type=click.Path(exists=True, dir_okay=False))
@click.option("--head", type=click.Path(exists=True, dir_okay=False), help="Trained head (implies --judge trained).")
@click.option("--judge", "kind", type=click.Choice(["trained", "embedding", "answer", "llm"]), default=None,
              help="Judge to evaluate (default: trained with --head, else embedding). llm: the --model "
                   "itself is asked whether two partial traces will agree (loads the model).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), help="Embedding judge calibration JSON.")
@click.option("--threshold", type=FiniteFloatRange(min=0, max=1), default=None, help="Decision threshold (default: the head's, else 0.5).")
@click.option("--prefix-chars", default=None, help="Prefix lengths (default: those the head was trained with).")
@click.option("--eval-fraction", type=FiniteFloatRange(min=0, max=1, max_open=True), default=0.25, show_default=True,
              help="Without a head: hold out the same questions `judge train` would (same --seed).")
@click.option("--all-questions", is_flag=True, help="Evaluate on every question (no held-out split).")
@click.option("--max-pairs-per-question", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@rows_option
@model_options
def eval_cmd(traces: str, head: str | None, kind: str | None, calibration: str | None, threshold: float | None,
             prefix_chars: str | None, eval_fraction: float, all_questions: bool,
             max_pairs_per_question: int, seed: int, json_out: str | None, row_range: str | None,
             model: str, backend: str, urls: tuple[str, ...], dtype: str, weights: str) -> None:
    """AUROC (with a 95% CI resampling questions) and precision/recall of a judge on pairs
    from questions not used in training. The model options are the llm judge's."""
    from parareason.judge.factory import make_judge
    from parareason.judge.pairs import parse_prefixes, split_by_question
    from parareason.judge.workflow import evaluate_judge, held_out

    kind = kind or ("trained" if head else "embedding")
    questions = _load_traces(traces, row_range)  # a malformed file fails before any model loads
    engine = None
    if kind == "llm":
        check_backend_args(backend, urls)
        engine = open_engine(model, backend, urls, dtype, weights)
    judge_obj = make_judge(kind, head=head, calibration=calibration, backend=engine and engine.backend)
    meta = getattr(judge_obj, "meta", {}) or {}
    if all_questions:
        chosen, split = questions, "all questions"
    elif "train_ids" in meta:
        chosen, split = held_out(questions, meta["train_ids"]), "questions not used to train the head"
    else:
        chosen, split = split_by_question(questions, eval_fraction, seed)[1], f"held-out split (seed {seed})"
    prefixes = (parse_prefixes(prefix_chars) if prefix_chars
                else tuple(meta.get("settings", {}).get("prefix_chars", (400, 800, 0))))
    thr = threshold if threshold is not None else float(getattr(judge_obj, "threshold", 0.5))
    r = evaluate_judge(judge_obj, chosen, thr, prefixes, max_pairs_per_question, seed)
    click.echo(f"judge: {r.judge}   data: {traces}   {split}: {r.n_questions}")
    click.echo(f"pairs: {r.n_pairs} (same answer: {r.positive_rate:.1%})")
    click.echo(f"AUROC: {_fmt(r.auroc)} {_ci(r.auroc_ci)}")
    for name, d in r.by_prefix.items():
        click.echo(f"  prefix {name:>5}: AUROC {_fmt(d['auroc'])} {_ci(d['auroc_ci'])} on {d['pairs']} pairs")
    t = r.at_threshold
    if t:
        click.echo(f"at threshold {thr:.3f}: precision {_fmt(t['precision'])}  recall {_fmt(t['recall'])}  "
                   f"F1 {_fmt(t['f1'])}  accuracy {_fmt(t['accuracy'])}")
    if json_out:
        extra = {"model": model, "weights": weights} if kind == "llm" else {}
        Path(json_out).write_text(json.dumps({"traces": traces, "split": split, **extra, **r.to_dict()},
                                             indent=2) + "\n")


def _load_traces(traces: str, row_range: str | None = None) -> list:
    """Trace file -> questions in dataset order (only --rows, if given); a malformed line
    is a clean CLI error, not a traceback."""
    from parareason.judge.pairs import load_traces

    try:
        questions = load_traces(traces)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    return select_rows(questions, row_range)
