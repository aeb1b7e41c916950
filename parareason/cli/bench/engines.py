"""`parareason bench engines`: options for parareason/bench/engines_bench.py."""
from __future__ import annotations

import click

from parareason.bench.engines_bench import EnginesBenchConfig, run_engines_bench
from parareason.cli.options import WEIGHTS_CHOICES
from parareason.models import DEFAULT_MODEL


@click.command("engines")
@click.option("--url", default=None, help="a running vLLM server (default: start one, make vllm-server's way)")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--n", "n", default=16, show_default=True, help="samples of the prompt")
@click.option("--max-new-tokens", default=128, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--weights", type=click.Choice(WEIGHTS_CHOICES), default="full", show_default=True,
              help="the embedded engine's weight format (its row only; vLLM serves float32)")
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def engines(url: str | None, model: str, n: int, max_new_tokens: int, seed: int, weights: str, out_path: str) -> None:
    """Embedded engine vs vLLM CPU: useful tokens/s, and SC/DeepConf/FFS over vLLM vs vLLM n=N."""
    for row in run_engines_bench(EnginesBenchConfig(url=url, model=model, n=n, max_new_tokens=max_new_tokens,
                                                    seed=seed, weights=weights, out_path=out_path)):
        click.echo(f"{row.label:<32} {row.tokens:>6} tokens {row.seconds:7.1f} s {row.tokens_per_s:7.1f} tok/s")
