"""`parareason bench …`: each benchmark owns a module under parareason/bench/."""
from __future__ import annotations

import click

from parareason.cli.main import LazyGroup

BENCHMARKS: dict[str, str] = {
    "engine": "parareason.bench.engine_bench:engine",
    "scheduler": "parareason.bench.scheduler_bench:scheduler",
    "policies": "parareason.bench.policies_bench:policies",
    "deepprune": "parareason.bench.deepprune_bench:deepprune",
    "serve": "parareason.bench.serve_bench:serve",
}


class BenchGroup(LazyGroup):
    commands_table = BENCHMARKS





@click.group(cls=BenchGroup)
def bench() -> None:
    """Benchmarks; each appends its figures, command and machine to BENCHMARKS.md."""
