"""`parareason bench profile`: options for parareason/bench/decode_profile.py."""
from __future__ import annotations

import click

from parareason.bench.decode_profile import ProfileConfig, run_decode_profile
from parareason.cli.options import DTYPE_CHOICES, WEIGHTS_CHOICES
from parareason.models import DEFAULT_MODEL


def _batches(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("comma-separated integers, e.g. 1,64") from None
    if not out or min(out) < 1:
        raise click.BadParameter("batch sizes must be >= 1")
    return out


@click.command("profile")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="float32", show_default=True)
@click.option("--weights", type=click.Choice(WEIGHTS_CHOICES), default="full", show_default=True,
              help="linear layers' format (weights.py)")
@click.option("--batches", default="1,64", show_default=True, callback=_batches, help="batch sizes to profile")
@click.option("--context", type=click.IntRange(min=1), default=180, show_default=True, help="context tokens per row")
@click.option("--steps", type=click.IntRange(min=1), default=8, show_default=True,
              help="decode steps timed, and again profiled, per batch size")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--compare-per-row/--no-compare-per-row", default=True, show_default=True,
              help="also run each batch reading the shared prompt's KV once per row (the engine's old way)")
@click.option("--attention", "attention", default="c", show_default=True,
              callback=lambda c, p, v: _paths(v, ("c", "torch"), True),
              help="decode attention paths to profile, each in the same run: c (decode_attention.py), torch")
@click.option("--layers", "layers", default="", callback=lambda c, p, v: _paths(v, ("c", "python"), False),
              help="decoder layer paths to profile with C attention, each in the same run: c (one C call a "
                   "step, decode_layers.py; q8 weights), python (model.forward's loop); default: the model's own")
@click.option("--out", "out_path", default="BENCHMARKS.md", show_default=True)
def profile(model: str, dtype: str, weights: str, batches: tuple[int, ...], context: int, steps: int,
            warmup: int, seed: int, compare_per_row: bool, attention: tuple[str, ...], layers: tuple[str, ...],
            out_path: str) -> None:
    """Split one decode step (matmuls, LM head, attention, sampling, other) vs the weight-streaming floor."""
    if "c" in layers and weights != "q8":  # before the model loads
        raise click.BadParameter("the decoder layers run in one C call with --weights q8 only", param_hint="--layers")
    run_decode_profile(ProfileConfig(model=model, dtype=dtype, weights=weights, batches=batches, context=context,
                                     steps=steps, warmup=warmup, seed=seed, out_path=out_path,
                                     shared_prefix=(True, False) if compare_per_row else (True,),
                                     attention=attention, layers=layers))


def _paths(value: str, known: tuple[str, ...], at_least_one: bool) -> tuple[str, ...]:
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    if (at_least_one and not out) or any(v not in known for v in out):
        raise click.BadParameter(f"comma-separated paths out of {', '.join(known)}")
    return out
