"""`parareason bench policies`: every policy vs self-consistency@n on GSM8K questions.

All policies run on one loaded model, the same questions, the same sampling settings
and the same seed (a request's seed depends only on the run seed and the question id,
so sample i of a question starts from the same seed under every policy). For each
policy: accuracy (math-verify against the reference) with its 95% bootstrap CI, the
paired CI of its accuracy difference to self-consistency on the same questions,
generated tokens (absolute and as % of self-consistency's), and wall time of the whole
run; below the table, the SC@k curve from self-consistency's own samples (all from
io/statistics.py, as `parareason eval`). The markdown goes into BENCHMARKS.md with the
exact command; `--results` also writes every Result, `--summary-dir` eval's summary files.

Policy settings derived from --n (shown in the table):
  self_consistency, ffs, bom, multi_temp, rpc: n samples;
  deepconf: online, n traces of which max(2, n/4) warm up, window 32 tokens;
  scale: n/4 (at least 2) parallel samples per hard sub-problem.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from parareason.bench.policy_runs import (LEADING_COLUMNS, PolicyRun, leading_cells, load_questions,
                                          percent_of, result_counts, write_results)
from parareason.bench.run_log import RunLog, resume_runs
from parareason.io.statistics import sc_at_k_curve
from parareason.io.summary import (PolicySummary, ci_cell, difference_cell, markdown_table, sc_curve_markdown, summarize,
                                   with_baseline, write_summary)
from parareason.models import DEFAULT_MODEL
from parareason.backends.registry import DEFAULT_BACKEND

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
    return PolicyRun(policy=name, settings=settings, wall_s=wall, results=list(results), **result_counts(results))


def comparisons(runs: list[PolicyRun]) -> list[PolicySummary]:
    """Each run's summary against the first (self-consistency): accuracy CI, paired CI of
    the accuracy difference, token and wall ratios (io/summary.py, as `parareason eval`)."""
    return with_baseline([summarize(r.policy, r.results, r.wall_s) for r in runs])


def render_table(runs: list[PolicyRun], baseline: PolicyRun | None) -> str:
    base_tokens = baseline.generated_tokens if baseline else 0
    base_wall = baseline.wall_s if baseline else 0.0
    stats = comparisons(runs)
    rows = [leading_cells(r, base_tokens) + [f"{r.sequential_per_question:.0f}", f"{r.wall_s:.1f}",
                                             percent_of(r.wall_s, base_wall), str(r.errors),
                                             ci_cell(s.accuracy_ci), difference_cell(s, stats[0])]
            for r, s in zip(runs, stats)]
    return markdown_table([*LEADING_COLUMNS, "sequential tokens / question", "wall s", "wall vs SC", "errors",
                           "accuracy 95% CI", "vs SC: accuracy [95% paired CI]"], rows)


def policy_order(names: Sequence[str]) -> list[str]:
    """The policies to run: the baseline first (always), then the others in the order given."""
    return [BASELINE] + [p for p in names if p != BASELINE]


@dataclass
class PoliciesBenchConfig:
    data_path: Path  # JSONL with id, question, answer (GSM8K-train format)
    names: list[str]  # policies to run, baseline first (policy_order)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per policy, over policy_settings
    policy_args: tuple[str, ...] = ()  # the overrides as given on the command line (for the rerun command)
    limit: int = 32
    offset: int = 0
    n: int = 16
    seed: int = 0
    model: str = DEFAULT_MODEL
    max_new_tokens: int = 384
    temperature: float = 0.7
    max_concurrent: int = 2  # questions sharing a batch
    backend: str = DEFAULT_BACKEND
    urls: tuple[str, ...] = ()
    dtype: str = "auto"
    load_options: dict[str, Any] = field(default_factory=dict)  # the backend's load options (part of the config)
    out: Path = Path("BENCHMARKS.md")  # markdown file whose 'Policies' section is replaced
    results_path: Path | None = None  # every Result (JSONL), and each finished policy's summary next to it
    resume: bool = False  # keep the policies already finished in results_path under the same settings
    summary_dir: Path | None = None  # also write summary.json, summary.md, accuracy_vs_tokens.png here


def run_policies_bench(cfg: PoliciesBenchConfig, open_engine: Callable[[], Any]) -> Path:
    """Each policy vs self-consistency@n: accuracy, generated tokens, wall time.
    `open_engine()` loads the model (called once, only if some policy has to run)."""
    from parareason.bench.report import write_section

    data_path, limit, offset, n, seed, model = cfg.data_path, cfg.limit, cfg.offset, cfg.n, cfg.seed, cfg.model
    max_new_tokens, temperature, names, overrides = cfg.max_new_tokens, cfg.temperature, cfg.names, cfg.overrides
    max_concurrent, backend, urls, dtype = cfg.max_concurrent, cfg.backend, cfg.urls, cfg.dtype
    out, results_path, resume, policy_args = cfg.out, cfg.results_path, cfg.resume, cfg.policy_args
    if resume and results_path is None:
        raise ValueError("resume needs a results path (the finished runs are kept next to it)")
    rows = load_questions(data_path, limit, offset)
    print(f"{len(rows)} questions from {data_path}, n={n}, model={model}, seed={seed}")
    config = {"data": str(data_path), "limit": limit, "offset": offset, "n": n, "seed": seed, "model": model,
              "max_new_tokens": max_new_tokens, "temperature": temperature, "max_concurrent": max_concurrent,
              "backend": backend, **cfg.load_options}
    log = RunLog(results_path, config) if results_path else None
    if log is not None and not resume:
        log.path.unlink(missing_ok=True)
    settings_of = {name: {**policy_settings(name, n), **overrides.get(name, {})} for name in names}
    kept = resume_runs(log, results_path, settings_of, len(rows)) if resume else {}
    runs: list[PolicyRun] = []
    results_file = results_path.open("a" if resume else "w", encoding="utf-8") if results_path else None
    engine = None
    try:
        for name in names:
            if name in kept:
                runs.append(kept[name])
                print(f"{name:18s} kept from {log.path} (finished earlier with these settings)")
                continue
            if engine is None:
                engine = open_engine()
                # Untimed warm-up (first forward passes, allocator growth), so the baseline
                # that runs first is not charged for it.
                engine.run(rows[:1], policy=BASELINE, n=1, max_new_tokens=8, seed=seed, keep_trace=False)
            r = run_policy(engine, rows, name, settings_of[name], max_new_tokens=max_new_tokens,
                           temperature=temperature, seed=seed, max_concurrent=max_concurrent,
                           results_file=results_file)
            runs.append(r)
            if log is not None:
                log.add(r)
            print(f"{name:18s} acc {r.accuracy:6.1%}  tokens {r.generated_tokens:8d}  "
                  f"wall {r.wall_s:7.1f}s  errors {r.errors}")
    finally:
        if results_file is not None:
            results_file.close()
        if engine is not None:
            engine.close()
    table = render_table(runs, runs[0])
    curve = sc_at_k_curve(runs[0].results)
    curve_md = sc_curve_markdown(curve, BASELINE)
    choice = getattr(engine.backend, "dtype_choice", None) if engine is not None else None
    resolved_dtype = choice.dtype if choice is not None else dtype  # what auto chose, when the model loaded
    weights = cfg.load_options.get("weights", "full")
    body = (f"Model `{model}`, {len(rows)} questions of `{data_path.name}` (rows {offset}-{offset + len(rows) - 1}), n={n}, "
            f"temperature={temperature}, max_new_tokens={max_new_tokens}, seed={seed}, "
            f"{max_concurrent} questions per batch, backend {backend}"
            f"{f' ({resolved_dtype}, {weights} weights)' if backend == 'embedded' else ''}. Accuracy is math-verify "
            f"equivalence with the reference; tokens are generated tokens summed over questions; "
            f"sequential tokens are a request's latency in decode steps (samples run side by side count once); "
            f"wall is the policy's whole run on one loaded model, after an untimed warm-up request "
            f"(on a shared machine wall time is noisy; tokens are the stable cost figure). "
            f"Accuracy CIs are 95% BCa bootstrap intervals over questions; the paired CI resamples question "
            f"indices and takes both policies' outcomes on them (io/statistics.py, seed 0).\n\n{table}\n{curve_md}")
    # The full command with every resolved option (defaults included), so a rerun is exact.
    command = " ".join(["parareason bench policies", f"--data {shlex.quote(str(data_path))}", f"--limit {limit}", f"--offset {offset}",
                        f"--n {n}", f"--seed {seed}", f"--model {shlex.quote(model)}",
                        f"--max-new-tokens {max_new_tokens}", f"--temperature {temperature}",
                        f"--policies {','.join(names)}",
                        *[f"--policy-arg {shlex.quote(a)}" for a in policy_args], f"--max-concurrent {max_concurrent}",
                        f"--backend {backend}", *[f"--url {u}" for u in urls],
                        *([f"--dtype {dtype}"] if backend == "embedded" else []),
                        *([f"--weights {cfg.load_options['weights']}"] if "weights" in cfg.load_options else []),
                        *([f"--results {shlex.quote(str(results_path))}"] if results_path else []),
                        *([f"--summary-dir {shlex.quote(str(cfg.summary_dir))}"] if cfg.summary_dir else [])])
    if cfg.summary_dir is not None:  # the same files as `parareason eval` writes
        paths = write_summary(cfg.summary_dir, comparisons(runs), {"command": command, **config}, curve=curve,
                              curve_policy=BASELINE)
        print(f"wrote {paths['md']}, {paths['json']}, {paths['png']}")
    path = write_section("Policies vs self-consistency", body, path=out, command=command)
    print(table + (f"\n{curve_md}" if curve_md else ""))
    print(f"wrote {path}")
    return path
