"""`parareason bench deepprune`: options for parareason/bench/deepprune_bench.py."""
from __future__ import annotations

from pathlib import Path

import click

from parareason.cli.options import BackendType, FiniteFloatRange
from parareason.cli.bench import gsm8k_options
from parareason.backends.registry import DEFAULT_BACKEND


@click.command()
@gsm8k_options("Samples per question (SC@n and DeepPrune width).")
@click.option("--judge", "judge_kind", type=click.Choice(["auto", "embedding", "trained"]), default="auto", show_default=True,
              help="auto: the head shipped for --model (parareason/judge/heads/), else embedding; "
                   "what --policy deepprune uses by default.")
@click.option("--head", type=click.Path(exists=True, dir_okay=False), help="Trained judge head (with --judge trained).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), help="Embedding judge calibration JSON.")
@click.option("--threshold", type=FiniteFloatRange(min=0, max=1), default=None, help="Prune above this judge score (default: the head's, else 0.5).")
@click.option("--check-every", type=int, default=128, show_default=True, help="Generated tokens between judge checkpoints.")
@click.option("--reps-per-cluster", type=int, default=1, show_default=True)
@click.option("--max-new-tokens", type=int, default=384, show_default=True)
@click.option("--temperature", type=FiniteFloatRange(min=0), default=0.7, show_default=True)
@click.option("--max-concurrent", type=int, default=2, show_default=True, help="Questions sharing a batch.")
@click.option("--backend", type=BackendType(), default=DEFAULT_BACKEND, show_default=True)
@click.option("--url", "urls", multiple=True, help="SGLang server URL (repeat for several workers).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("BENCHMARKS.md"),
              show_default=True, help="Markdown file whose 'DeepPrune vs self-consistency' section is replaced.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every Result (JSONL) here.")
def deepprune(data_path: Path, limit: int, offset: int, n: int, seed: int, model: str, judge_kind: str, head: str | None,
              calibration: str | None, threshold: float | None, check_every: int, reps_per_cluster: int,
              max_new_tokens: int, temperature: float, max_concurrent: int, backend: str,
              urls: tuple[str, ...], out: Path, results_path: Path | None) -> None:
    """DeepPrune vs self-consistency@n: accuracy, tokens, tokens saved, wall time."""
    from parareason.bench.deepprune_bench import DeepPruneBenchConfig, run_deepprune_bench

    if not data_path.exists():
        raise click.BadParameter(f"{data_path} not found (GSM8K-train JSONL with id/question/answer)",
                                 param_hint="--data")
    if judge_kind == "trained" and not head:
        raise click.BadParameter("--judge trained needs --head PATH (see `parareason judge train`)", param_hint="--head")
    run_deepprune_bench(DeepPruneBenchConfig(
        data_path=data_path, limit=limit, offset=offset, n=n, seed=seed, model=model, judge_kind=judge_kind,
        head=head, calibration=calibration, threshold=threshold, check_every=check_every,
        reps_per_cluster=reps_per_cluster, max_new_tokens=max_new_tokens, temperature=temperature,
        max_concurrent=max_concurrent, backend=backend, urls=tuple(urls), out=out, results_path=results_path))
