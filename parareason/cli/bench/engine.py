"""`parareason bench engine`: options for parareason/bench/engine_bench.py."""
from __future__ import annotations

import click

from parareason.bench.engine_anchors import ANCHORS, DEFAULT_ANCHORS, parse_anchors
from parareason.bench.engine_bench import DEFAULT_PROMPT, EngineBenchConfig, run_engine_bench
from parareason.cli.options import DTYPE_CHOICES, WEIGHTS_CHOICES
from parareason.models import DEFAULT_MODEL


def _ints(value: str, hint: str) -> tuple[int, ...]:
    try:
        ns = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        ns = ()
    if not ns or min(ns) < 1:
        raise click.BadParameter(f"expected comma-separated positive integers, got {value!r}", param_hint=hint)
    return ns


def _weights(value: str) -> tuple[str, ...]:
    fmts = tuple(w.strip().lower() for w in value.split(",") if w.strip())
    bad = [w for w in fmts if w not in WEIGHTS_CHOICES]
    if not fmts or bad:
        raise click.BadParameter(f"expected a comma list of {', '.join(WEIGHTS_CHOICES)}, got {value!r}",
                                 param_hint="--weights")
    return fmts


@click.command("engine")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--n", "ns", default="1,16,64", show_default=True, help="samples of the prompt, comma-separated")
@click.option("--weights", default=",".join(WEIGHTS_CHOICES), show_default=True,
              help="embedded engine weight formats, comma-separated (one engine each)")
@click.option("--anchors", default=",".join(DEFAULT_ANCHORS), show_default=True,
              help=f"engines to compare with, comma-separated, from {', '.join(ANCHORS)} ('' for none); "
                   "one not installed is skipped with how to install it")
@click.option("--max-new-tokens", default=128, show_default=True)
@click.option("--temperature", default=0.7, show_default=True)
@click.option("--top-p", default=0.95, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=False, help="user message (GSM8K train #1 by default)")
@click.option("--n1-requests", default=8, show_default=True, type=click.IntRange(min=1),
              help="requests timed one after another at n=1 (seeds seed, seed+1, ...): one short answer "
                   "ending at EOS is too few tokens to time")
@click.option("--ttft-reps", default=3, show_default=True, help="repetitions of the prefill timing")
@click.option("--dtype-check/--no-dtype-check", default=True, show_default=True,
              help="also time one decode step in float32 and bfloat16")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True,
              help="compute dtype of the full weights; generate runs in the same one")
@click.option("--llama-threads", default=2, show_default=True, help="llama-batched-bench -t")
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def engine(model: str, ns: str, weights: str, anchors: str, max_new_tokens: int, temperature: float, top_p: float,
           seed: int, prompt: str, n1_requests: int, ttft_reps: int, dtype_check: bool, dtype: str, llama_threads: int,
           out_path: str) -> None:
    """Useful tokens/s of the embedded engine (each weight format) vs llama.cpp and vLLM CPU, at each n."""
    try:
        anchor_names = parse_anchors(anchors)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--anchors") from None
    run_engine_bench(EngineBenchConfig(model=model, ns=_ints(ns, "--n"), weights=_weights(weights),
                                       anchors=anchor_names, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, seed=seed, prompt=prompt, n1_requests=n1_requests, ttft_reps=ttft_reps,
                                       dtype_check=dtype_check, dtype=dtype, llama_threads=llama_threads,
                                       out_path=out_path))
