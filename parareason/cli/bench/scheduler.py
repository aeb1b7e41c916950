"""`parareason bench scheduler`: options for parareason/bench/scheduler_bench.py."""
from __future__ import annotations

import click

from parareason.models import DEFAULT_MODEL


@click.command("scheduler")
@click.option("--threads", "thread_counts", default="16,64,256", show_default=True, help="comma-separated")
@click.option("--tokens", default=128, show_default=True, help="tokens per thread (one per step)")
@click.option("--engine/--no-engine", "with_engine", default=True, show_default=True,
              help="also time the real engine's decode step at the same batch sizes")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--engine-steps", default=3, show_default=True, help="decode steps timed per batch size")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def scheduler(thread_counts: str, tokens: int, with_engine: bool, model: str, engine_steps: int, seed: int,
              out_path: str) -> None:
    """Scheduler overhead: thread-steps/s on a zero-cost backend, and share of a real decode step."""
    from parareason.bench.scheduler_bench import run_scheduler_bench

    try:
        counts = [int(x) for x in thread_counts.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {thread_counts!r}",
                                 param_hint="--threads") from None
    run_scheduler_bench(counts, tokens, with_engine, model, engine_steps, seed, out_path)
