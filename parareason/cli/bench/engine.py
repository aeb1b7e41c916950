"""`parareason bench engine`: options for parareason/bench/engine_bench.py."""
from __future__ import annotations

import click

from parareason.bench.engine_bench import DEFAULT_PROMPT, EngineBenchConfig, run_engine_bench
from parareason.cli.options import DTYPE_CHOICES
from parareason.models import DEFAULT_MODEL


@click.command("engine")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--n", "n", default=16, show_default=True, help="samples of the prompt")
@click.option("--max-new-tokens", default=128, show_default=True)
@click.option("--temperature", default=0.7, show_default=True)
@click.option("--top-p", default=0.95, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=False, help="user message (GSM8K train #1 by default)")
@click.option("--ttft-reps", default=3, show_default=True, help="repetitions of the prefill timing")
@click.option("--dtype-check/--no-dtype-check", default=True, show_default=True,
              help="also time one decode step in float32 and bfloat16")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True,
              help="engine dtype; generate runs in the same one")
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def engine(model: str, n: int, max_new_tokens: int, temperature: float, top_p: float, seed: int, prompt: str,
           ttft_reps: int, dtype_check: bool, dtype: str, out_path: str) -> None:
    """Useful tokens/s of the engine vs transformers generate; prefill n vs 1."""
    run_engine_bench(EngineBenchConfig(model=model, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, seed=seed, prompt=prompt, ttft_reps=ttft_reps,
                                       dtype_check=dtype_check, dtype=dtype, out_path=out_path))
