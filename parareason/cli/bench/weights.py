"""`parareason bench weights`: options for parareason/bench/weights_bench.py."""
from __future__ import annotations

from pathlib import Path

import click

from parareason.cli.options import labelled_trace_files
from parareason.models import DEFAULT_MODEL


@click.command("weights")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--formats", default="full,float16,int8,q8", show_default=True, help="Weight formats (comma list).")
@click.option("--answer-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--traces", multiple=True, callback=labelled_trace_files("FORMAT", "int8=runs/int8.traces.jsonl"), metavar="FORMAT=PATH",
              help="A trace file recorded with --weights FORMAT (same rows and seeds for every format; "
                   "repeat; one must be full): adds SC@k with paired CIs against full.")
@click.option("--k", type=click.IntRange(min=1), default=8, show_default=True, help="Traces per SC vote.")
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def weights(model: str, formats: str, answer_tokens: int, traces: dict[str, Path], k: int, out_path: str) -> None:
    """Accuracy cost of each weight format: KL and logprob drift on a fixed text, SC@k vs full."""
    from parareason.bench.weights_bench import WeightsBenchConfig, run_weights_bench

    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    click.echo(run_weights_bench(WeightsBenchConfig(model=model, formats=fmts, answer_tokens=answer_tokens,
                                                    traces=traces, k=k, out_path=out_path)))
