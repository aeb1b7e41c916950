"""`parareason bench …`: each benchmark's options live in parareason/cli/bench/, its
measurement in parareason/bench/ (plain functions, no click options)."""
from __future__ import annotations

import click

from parareason.cli.main import LazyGroup

BENCHMARKS: dict[str, str] = {
    "engine": "parareason.cli.bench.engine:engine",
    "scheduler": "parareason.cli.bench.scheduler:scheduler",
    "policies": "parareason.cli.bench.policies:policies",
    "deepprune": "parareason.cli.bench.deepprune:deepprune",
    "serve": "parareason.cli.bench.serve:serve",
    "engines": "parareason.cli.bench.engines:engines",
    "profile": "parareason.cli.bench.profile:profile",
    "weights": "parareason.cli.bench.weights:weights",
}


class BenchGroup(LazyGroup):
    commands_table = BENCHMARKS


@click.group(cls=BenchGroup)
def bench() -> None:
    """Benchmarks; each appends its figures, command and machine to BENCHMARKS.md."""
