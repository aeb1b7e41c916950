"""`parareason bench policies`: options for parareason/bench/policies_bench.py."""
from __future__ import annotations

from pathlib import Path

import click

from parareason.bench.policies_bench import DEFAULT_POLICIES, PoliciesBenchConfig, policy_order, run_policies_bench
from parareason.cli.options import DTYPE_CHOICES, FiniteFloatRange, WEIGHTS_CHOICES, WEIGHTS_HELP, BackendType, engine_options, open_engine, parse_policy_args
from parareason.cli.bench import gsm8k_options
from parareason.backends.registry import DEFAULT_BACKEND


@click.command()
@gsm8k_options("Samples per question (SC@n baseline).")
@click.option("--max-new-tokens", type=int, default=384, show_default=True)
@click.option("--temperature", type=FiniteFloatRange(min=0), default=0.7, show_default=True)
@click.option("--policies", default=",".join(DEFAULT_POLICIES), show_default=True,
              help="Comma-separated policy names; self_consistency always runs first as the baseline.")
@click.option("--policy-arg", "policy_args", multiple=True, metavar="[POLICY.]KEY=VALUE",
              help="Override a derived setting (repeatable), e.g. deepconf.consensus=0.7.")
@click.option("--max-concurrent", type=int, default=2, show_default=True, help="Questions sharing a batch.")
@click.option("--backend", type=BackendType(), default=DEFAULT_BACKEND, show_default=True)
@click.option("--url", "urls", multiple=True, help="SGLang server URL (repeat for several workers).")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True,
              help="Embedded engine dtype (auto: measured on this CPU).")
@click.option("--weights", type=click.Choice(WEIGHTS_CHOICES), default="full", show_default=True, help=WEIGHTS_HELP)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("BENCHMARKS.md"),
              show_default=True, help="Markdown file whose 'Policies' section is replaced.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every Result (JSONL) here, and each finished policy's summary to RESULTS.runs.jsonl.")
@click.option("--resume", is_flag=True,
              help="With --results: keep the policies already finished there under the same settings, run the rest.")
@click.option("--summary-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write summary.json, summary.md and accuracy_vs_tokens.png here (as `parareason eval`).")
def policies(data_path: Path, limit: int, offset: int, n: int, seed: int, model: str, max_new_tokens: int,
             temperature: float, policies: str, policy_args: tuple[str, ...], max_concurrent: int, backend: str,
             urls: tuple[str, ...], dtype: str, weights: str, out: Path, results_path: Path | None, resume: bool,
             summary_dir: Path | None) -> None:
    """Each policy vs self-consistency@n: accuracy, generated tokens, wall time."""
    from parareason.cli.eval_cmd import split_policy_args
    from parareason.policies.registry import ALIASES, POLICY_NAMES

    if not data_path.exists():
        raise click.BadParameter(f"{data_path} not found (GSM8K-train JSONL with id/question/answer)",
                                 param_hint="--data")
    names = [ALIASES.get(p.strip(), p.strip()) for p in policies.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICY_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown policies {unknown}; known: {', '.join(POLICY_NAMES)}",
                                 param_hint="--policies")
    names = policy_order(names)
    overrides = split_policy_args(parse_policy_args(policy_args), names)
    if resume and results_path is None:
        raise click.BadParameter("--resume needs --results (the finished runs are kept next to it)",
                                 param_hint="--resume")
    cfg = PoliciesBenchConfig(
        data_path=data_path, names=names, overrides=overrides, policy_args=tuple(policy_args), limit=limit,
        offset=offset, n=n, seed=seed, model=model, max_new_tokens=max_new_tokens, temperature=temperature,
        max_concurrent=max_concurrent, backend=backend, urls=tuple(urls), dtype=dtype,
        load_options=engine_options(backend, dtype, weights), out=out, results_path=results_path, resume=resume,
        summary_dir=summary_dir)
    run_policies_bench(cfg, open_engine=lambda: open_engine(model, backend, tuple(urls), dtype, weights))
