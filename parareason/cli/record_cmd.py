"""`parareason record DATASET`: sample n plain traces per question into a trace file.

The file (format in parareason/backends/replay/tracefile.py) feeds `parareason replay`, which runs
any policy over the recorded samples without a model.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from parareason.cli.options import (
    FiniteFloatRange, check_backend_args, config_option, engine_options, model_options, output_options,
    parse_rows, rows_option,
)
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleOverrides


class RecordAll(Policy):
    """Launch n samples and keep every one to its natural end (no voting, no pruning)."""

    name = "record_all"

    def __init__(self, n: int, top_logprobs: int = 0):
        self.n, self.top_logprobs = n, top_logprobs

    @property
    def width(self) -> int:
        return self.n

    def start(self, ctx: PolicyContext) -> None:
        ov = SampleOverrides(top_logprobs=self.top_logprobs) if self.top_logprobs else None
        for _ in range(self.n):
            if ctx.launch(overrides=ov, tag="record") is None:
                break

    def finalize(self, ctx: PolicyContext) -> Decision:
        answers = [s.answer for s in ctx.samples]
        return Decision(answer=None, details={"answers": answers})


@click.command("record", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", type=click.Path(dir_okay=True, path_type=Path))
@config_option
@model_options
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=16, show_default=True,
              help="Traces sampled per question.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--temperature", type=FiniteFloatRange(min=0), default=0.7, show_default=True)
@click.option("--top-p", type=FiniteFloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option("--top-logprobs", type=click.IntRange(min=0, max=20), default=0, show_default=True,
              help="Also record the top-K alternatives' logprobs per token (for confidence policies).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions.")
@rows_option
@click.option("--questions-at-once", type=click.IntRange(min=1), default=4, show_default=True,
              help="Questions decoded together (their n samples share one batch). A larger "
                   "batch uses the CPU better: on 2 cores 64 rows give ~2x, 96 rows ~2.4x the "
                   "tokens/s of 16 rows.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Trace file (JSONL, one line per question).")
@output_options
def record(dataset: Path, model: str, backend: str, urls: tuple[str, ...], dtype: str, weights: str, n: int, max_new_tokens: int,
           temperature: float, top_p: float, top_logprobs: int, seed: int, limit: int | None,
           row_range: str | None, questions_at_once: int, out: Path, resume: bool, force: bool, quiet: bool) -> None:
    """Sample N traces per question of DATASET (plain protocol) and store tokens,
    logprobs (and top-K alternatives if asked), timings, finish reasons and extracted
    answers in a trace file for `parareason replay`. Resumable like `run` (--resume).
    The samples of --questions-at-once questions share one batch; each question is
    written when its last sample ends (so the file is in completion order, and every
    line carries its dataset row)."""
    from parareason.runtime.driver import drive_scheduler, request_seed
    from parareason.cli.options import backend_failure, open_engine, open_results
    from parareason.backends.base import BackendError
    from parareason.cli.eval_cmd import load_dataset
    from parareason.backends.replay.recording import RecordingBackend
    from parareason.backends.replay.tracefile import RecordedQuestion
    from parareason.backends.base import SamplingParams
    from parareason.runtime.limits import Limits
    from parareason.runtime.request import RequestSpec

    from parareason.cli.preflight import check_model, check_output

    check_backend_args(backend, urls)
    rows = load_dataset(dataset, limit, need_answers=False)
    # --rows keeps dataset indices (and so each row's seed and `row` field): a slice recorded
    # later pairs, question by question, with a full recording of the same file
    wanted = parse_rows(row_range) or slice(None)
    indexed = list(enumerate(rows))[wanted]
    if not indexed:
        raise click.BadParameter(f"{dataset} has no question at rows {row_range}", param_hint="--rows")
    check_output(out)  # before open_results creates the file...
    check_model(model, backend)  # ...and its .config.json
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                "top_logprobs": top_logprobs, "seed": seed, "n": n}
    config = {"model": model, "backend": backend, **engine_options(backend, dtype, weights), "protocol": "plain", **sampling}
    writer = open_results(out, config, resume=resume, force=force)
    try:
        todo = [(i, r) for i, r in indexed if r.id not in writer.done_ids]
        click.echo(f"traces -> {out}  ({len(indexed) - len(todo)} of {len(indexed)} questions already recorded)")
        if not todo:
            return
        engine = open_engine(model, backend, urls, dtype, weights)
        recorder = RecordingBackend(engine.backend)
        by_id = {r.id: (i, r) for i, r in todo}
        done = len(indexed) - len(todo)
        specs = [RequestSpec(id=r.id, prompt=r.prompt, policy=RecordAll(n, top_logprobs), protocol="plain",
                             reference=None,
                             params=SamplingParams(temperature=temperature, top_p=top_p,
                                                   max_new_tokens=max_new_tokens, seed=request_seed(seed, r.id)),
                             limits=Limits(tokens_per_thread=max(max_new_tokens, 1), max_live_threads=n),
                             keep_trace=False)
                 for _, r in todo]

        def write(result: Any) -> None:
            nonlocal done
            index, row = by_id[result.id]
            contexts, pieces, calls = recorder.take(answers=True, key=row.id, prompt=row.prompt)
            q = RecordedQuestion(id=row.id, prompt=row.prompt, reference=row.answer, model=model,
                                 tokenizer=engine.backend.tokenizer.name,
                                 eos_token_ids=sorted(engine.backend.tokenizer.eos_token_ids),
                                 sampling=sampling, contexts=contexts, chat_calls=calls["chat"],
                                 encode_calls=calls["encode"], pieces=pieces, row=index)
            writer.append(q.to_dict())
            done += 1
            answers = [t.answer for c in contexts for t in c.traces]
            toks = sum(len(t.token_ids) for c in contexts for t in c.traces)
            click.echo(f"[{done}/{len(indexed)}] {row.id}: {q.n_traces} traces, {toks} tokens, "
                       f"answers {_tally(answers)} (reference {row.answer})  {time.monotonic() - t_start:.0f}s")

        t_start = time.monotonic()
        try:
            drive_scheduler(recorder, specs, max_concurrent=questions_at_once, on_result=write)
        except BackendError as e:
            raise backend_failure(e, out) from None
        finally:
            engine.close()
        click.echo(f"recorded {len(todo)} question(s) in {time.monotonic() - t_start:.1f}s -> {out}")
    finally:
        writer.close()


def _tally(answers: list[Any]) -> str:
    counts: dict[str, int] = {}
    for a in answers:
        counts[str(a)] = counts.get(str(a), 0) + 1
    return ", ".join(f"{a} x{c}" for a, c in sorted(counts.items(), key=lambda kv: -kv[1])[:4])
