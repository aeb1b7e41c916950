"""`parareason bench policies`: every policy vs self-consistency@n on GSM8K questions.

All policies run on one loaded model, the same questions, the same sampling settings
and the same seed (a request's seed depends only on the run seed and the question id,
so sample i of a question starts from the same seed under every policy). For each
policy: accuracy (math-verify against the reference), generated tokens (absolute and
as % of self-consistency's), and wall time of the whole run. The markdown table goes
into BENCHMARKS.md with the exact command; `--results` also writes every Result.

Policy settings derived from --n (shown in the table):
  self_consistency, ffs, bom, multi_temp, rpc: n samples;
  deepconf: online, n traces of which max(2, n/4) warm up, window 32 tokens;
  scale: n/4 (at least 2) parallel samples per hard sub-problem.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import click

from parareason.bench.policy_runs import (LEADING_COLUMNS, PolicyRun, leading_cells, load_questions, markdown_table,
                                          percent_of, result_counts, write_results)
from parareason.bench.run_log import RunLog, resume_runs
from parareason.cli.options import DTYPE_CHOICES, BackendType, engine_options, open_engine

BASELINE = "self_consistency"
DEFAULT_POLICIES = ("self_consistency", "ffs", "deepconf", "bom", "multi_temp", "rpc", "scale")


def policy_settings(name: str, n: int) -> dict[str, Any]:
    """The parameters each policy gets in this benchmark, derived from the sample count."""
    if name == "deepconf":
        return {"n": n, "warmup": max(2, n // 4), "window": 32}
    if name == "scale":
        return {"n": max(2, n // 4)}
    return {"n": n}


def run_policy(engine: Any, rows: list[dict[str, Any]], name: str, settings: dict[str, Any], *, max_new_tokens: int,
               temperature: float, seed: int, max_concurrent: int, results_file: Any = None) -> PolicyRun:
    t0 = time.perf_counter()
    results = engine.run(rows, policy=name, policy_args=settings, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed, max_concurrent=max_concurrent, keep_trace=False)
    wall = time.perf_counter() - t0
    write_results(results_file, results)
    return PolicyRun(policy=name, settings=settings, wall_s=wall, **result_counts(results))


def render_table(runs: list[PolicyRun], baseline: PolicyRun | None) -> str:
    base_tokens = baseline.generated_tokens if baseline else 0
    base_wall = baseline.wall_s if baseline else 0.0
    rows = [leading_cells(r, base_tokens) + [f"{r.sequential_per_question:.0f}", f"{r.wall_s:.1f}",
                                             percent_of(r.wall_s, base_wall), str(r.errors)]
            for r in runs]
    return markdown_table([*LEADING_COLUMNS, "sequential tokens / question", "wall s", "wall vs SC", "errors"], rows)


@click.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("../shared/data/gsm8k_train.jsonl"), show_default=True,
              help="JSONL with id, question, answer (GSM8K-train format).")
@click.option("--limit", type=int, default=32, show_default=True, help="Questions (N rows from --offset).")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many rows first (e.g. 32 for a held-out half).")
@click.option("--n", type=int, default=16, show_default=True, help="Samples per question (SC@n baseline).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", default="qwen2.5-0.5b-coder", show_default=True)
@click.option("--max-new-tokens", type=int, default=384, show_default=True)
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--policies", default=",".join(DEFAULT_POLICIES), show_default=True,
              help="Comma-separated policy names; self_consistency always runs first as the baseline.")
@click.option("--policy-arg", "policy_args", multiple=True, metavar="[POLICY.]KEY=VALUE",
              help="Override a derived setting (repeatable), e.g. deepconf.consensus=0.7.")
@click.option("--max-concurrent", type=int, default=2, show_default=True, help="Questions sharing a batch.")
@click.option("--backend", type=BackendType(), default="embedded", show_default=True)
@click.option("--url", "urls", multiple=True, help="SGLang server URL (repeat for several workers).")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True,
              help="Embedded engine dtype (auto: measured on this CPU).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("BENCHMARKS.md"),
              show_default=True, help="Markdown file whose 'Policies' section is replaced.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every Result (JSONL) here, and each finished policy's summary to RESULTS.runs.jsonl.")
@click.option("--resume", is_flag=True,
              help="With --results: keep the policies already finished there under the same settings, run the rest.")
def policies(data_path: Path, limit: int, offset: int, n: int, seed: int, model: str, max_new_tokens: int,
             temperature: float, policies: str, policy_args: tuple[str, ...], max_concurrent: int, backend: str,
             urls: tuple[str, ...], dtype: str, out: Path, results_path: Path | None, resume: bool) -> None:
    """Each policy vs self-consistency@n: accuracy, generated tokens, wall time."""
    from parareason.bench.report import write_section
    from parareason.policies.registry import ALIASES, POLICY_NAMES

    if not data_path.exists():
        raise click.BadParameter(f"{data_path} not found (GSM8K-train JSONL with id/question/answer)",
                                 param_hint="--data")
    names = [ALIASES.get(p.strip(), p.strip()) for p in policies.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICY_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown policies {unknown}; known: {', '.join(POLICY_NAMES)}",
                                 param_hint="--policies")
    names = [BASELINE] + [p for p in names if p != BASELINE]
    from parareason.cli.eval_cmd import split_policy_args
    from parareason.cli.options import parse_policy_args

    overrides = split_policy_args(parse_policy_args(policy_args), names)
    if resume and results_path is None:
        raise click.BadParameter("--resume needs --results (the finished runs are kept next to it)",
                                 param_hint="--resume")
    rows = load_questions(data_path, limit, offset)
    click.echo(f"{len(rows)} questions from {data_path}, n={n}, model={model}, seed={seed}")
    config = {"data": str(data_path), "limit": limit, "offset": offset, "n": n, "seed": seed, "model": model,
              "max_new_tokens": max_new_tokens, "temperature": temperature, "max_concurrent": max_concurrent,
              "backend": backend, **engine_options(backend, dtype)}
    log = RunLog(results_path, config) if results_path else None
    if log is not None and not resume:
        log.path.unlink(missing_ok=True)
    settings_of = {name: {**policy_settings(name, n), **overrides[name]} for name in names}
    kept = resume_runs(log, results_path, settings_of, len(rows)) if resume else {}
    runs: list[PolicyRun] = []
    results_file = results_path.open("a" if resume else "w", encoding="utf-8") if results_path else None
    engine = None
    try:
        for name in names:
            if name in kept:
                runs.append(kept[name])
                click.echo(f"{name:18s} kept from {log.path} (finished earlier with these settings)")
                continue
            if engine is None:
                engine = open_engine(model, backend, tuple(urls), dtype)
                # Untimed warm-up (first forward passes, allocator growth), so the baseline
                # that runs first is not charged for it.
                engine.run(rows[:1], policy=BASELINE, n=1, max_new_tokens=8, seed=seed, keep_trace=False)
            r = run_policy(engine, rows, name, settings_of[name], max_new_tokens=max_new_tokens,
                           temperature=temperature, seed=seed, max_concurrent=max_concurrent,
                           results_file=results_file)
            runs.append(r)
            if log is not None:
                log.add(r)
            click.echo(f"{name:18s} acc {r.accuracy:6.1%}  tokens {r.generated_tokens:8d}  "
                       f"wall {r.wall_s:7.1f}s  errors {r.errors}")
    finally:
        if results_file is not None:
            results_file.close()
        if engine is not None:
            engine.close()
    table = render_table(runs, runs[0])
    choice = getattr(engine.backend, "dtype_choice", None) if engine is not None else None
    resolved_dtype = choice.dtype if choice is not None else dtype  # what auto chose, when the model loaded
    body = (f"Model `{model}`, {len(rows)} questions of `{data_path.name}` (rows {offset}-{offset + len(rows) - 1}), n={n}, "
            f"temperature={temperature}, max_new_tokens={max_new_tokens}, seed={seed}, "
            f"{max_concurrent} questions per batch, backend {backend}"
            f"{f' ({resolved_dtype})' if backend == 'embedded' else ''}. Accuracy is math-verify "
            f"equivalence with the reference; tokens are generated tokens summed over questions; "
            f"sequential tokens are a request's latency in decode steps (samples run side by side count once); "
            f"wall is the policy's whole run on one loaded model, after an untimed warm-up request "
            f"(on a shared machine wall time is noisy; tokens are the stable cost figure).\n\n{table}")
    # The full command with every resolved option (defaults included), so a rerun is exact.
    command = " ".join(["parareason bench policies", f"--data {shlex.quote(str(data_path))}", f"--limit {limit}", f"--offset {offset}",
                        f"--n {n}", f"--seed {seed}", f"--model {shlex.quote(model)}",
                        f"--max-new-tokens {max_new_tokens}", f"--temperature {temperature}",
                        f"--policies {','.join(names)}",
                        *[f"--policy-arg {shlex.quote(a)}" for a in policy_args], f"--max-concurrent {max_concurrent}",
                        f"--backend {backend}", *[f"--url {u}" for u in urls],
                        *([f"--dtype {dtype}"] if backend == "embedded" else []),
                        *([f"--results {shlex.quote(str(results_path))}"] if results_path else [])])
    path = write_section("Policies vs self-consistency", body, path=out, command=command)
    click.echo(table)
    click.echo(f"wrote {path}")
