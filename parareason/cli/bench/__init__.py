"""The click commands of `parareason bench …`, one module per benchmark.

Each parses its options and calls the benchmark's plain function in parareason/bench/
(which never imports cli/); cli/bench_cmd.py registers them lazily."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from parareason.models import DEFAULT_MODEL


def gsm8k_options(n_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The dataset options the GSM8K benchmarks share (data, rows, samples, seed, model)."""
    opts = [
        click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=Path("../shared/data/gsm8k_train.jsonl"), show_default=True,
                     help="JSONL with id, question, answer (GSM8K-train format)."),
        click.option("--limit", type=int, default=32, show_default=True, help="Questions (N rows from --offset)."),
        click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Skip this many rows first (e.g. 32 for a held-out half)."),
        click.option("--n", type=int, default=16, show_default=True, help=n_help),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--model", default=DEFAULT_MODEL, show_default=True),
    ]

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(opts):
            f = o(f)
        return f
    return apply
