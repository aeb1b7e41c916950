"""`parareason bench serve`: options for parareason/bench/serve_bench.py."""
from __future__ import annotations

import click

from parareason.bench.serve_bench import QUESTIONS, ServeBenchConfig, run_serve_bench
from parareason.cli.options import BackendType, FiniteFloatRange, check_backend_args
from parareason.models import DEFAULT_MODEL
from parareason.backends.registry import DEFAULT_BACKEND


@click.command("serve")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--backend", type=BackendType(), default=DEFAULT_BACKEND, show_default=True)
@click.option("--url", "urls", multiple=True, help="SGLang server URL(s) with --backend sglang.")
@click.option("--requests", "num_requests", type=click.IntRange(1, len(QUESTIONS)), default=8, show_default=True,
              help="requests per phase (GSM8K train rows 0..K-1)")
@click.option("--policy", default="sc", show_default=True)
@click.option("--n", "n", type=click.IntRange(min=1), default=2, show_default=True, help="samples per request")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--temperature", type=FiniteFloatRange(min=0), default=0.7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def serve(model: str, backend: str, urls: tuple[str, ...], num_requests: int, policy: str, n: int,
          max_new_tokens: int, temperature: float, seed: int, out_path: str) -> None:
    """K concurrent requests vs the same K one at a time, through the HTTP server."""
    check_backend_args(backend, urls)
    run_serve_bench(ServeBenchConfig(model=model, backend=backend, urls=tuple(urls), num_requests=num_requests,
                                     policy=policy, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                     seed=seed, out_path=out_path))
