"""`parareason bench deepprune`: DeepPrune vs self-consistency@n on GSM8K questions.

Both run on one loaded model, the same questions, sampling settings and seed (a
request's seed depends only on the run seed and the question id, so sample i starts
from the same seed under both policies). Reported per policy: accuracy (math-verify
against the reference), generated tokens, tokens saved against SC@n (measured) and
DeepPrune's own per-prune estimate, samples pruned, judge calls, and wall time of the
whole run (judge time included). The markdown table goes into BENCHMARKS.md with the
exact command; `--results` also writes every Result.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from parareason.bench.policy_runs import (LEADING_COLUMNS, PolicyRun, leading_cells, load_questions,
                                          result_counts, write_results)
from parareason.io.summary import markdown_table
from parareason.models import DEFAULT_MODEL
from parareason.backends.registry import DEFAULT_BACKEND


@dataclass
class BenchRun(PolicyRun):
    """A PolicyRun plus DeepPrune's own counts (zero for self-consistency)."""
    pruned: int = 0
    judge_calls: int = 0
    saved_estimate: int = 0


def summarize(name: str, settings: str, results: list, wall: float) -> BenchRun:
    return BenchRun(
        policy=name, settings=settings, wall_s=wall, **result_counts(results),
        pruned=sum(int(r.details.get("pruned", 0)) for r in results),
        judge_calls=sum(int(r.details.get("judge_calls", 0)) for r in results),
        saved_estimate=sum(int(r.details.get("tokens_saved_est", 0)) for r in results))


def render_table(runs: list[BenchRun]) -> str:
    base = runs[0]
    columns = [*LEADING_COLUMNS, "tokens saved vs SC", "pruned samples", "saved (policy estimate)", "judge calls",
               "wall s", "errors"]
    rows = [leading_cells(r, base.generated_tokens)
            + [str(base.generated_tokens - r.generated_tokens), str(r.pruned), str(r.saved_estimate),
               str(r.judge_calls), f"{r.wall_s:.1f}", str(r.errors)]
            for r in runs]
    return markdown_table(columns, rows)


@dataclass
class DeepPruneBenchConfig:
    data_path: Path  # JSONL with id, question, answer (GSM8K-train format)
    limit: int = 32  # questions (N rows from offset)
    offset: int = 0
    n: int = 16  # samples per question (SC@n and DeepPrune width)
    seed: int = 0
    model: str = DEFAULT_MODEL
    judge_kind: str = "auto"  # auto (the head shipped for the model, else embedding) | embedding | trained
    head: str | None = None  # trained judge head (judge "trained")
    calibration: str | None = None  # embedding judge calibration JSON
    threshold: float | None = None  # prune above this judge score (default: the head's, else 0.5)
    check_every: int = 128  # generated tokens between judge checkpoints
    reps_per_cluster: int = 1
    max_new_tokens: int = 384
    temperature: float = 0.7
    max_concurrent: int = 2  # questions sharing a batch
    backend: str = DEFAULT_BACKEND
    urls: tuple[str, ...] = ()
    out: Path = Path("BENCHMARKS.md")  # markdown file whose 'DeepPrune vs self-consistency' section is replaced
    results_path: Path | None = None  # also write every Result (JSONL) here


def run_deepprune_bench(cfg: DeepPruneBenchConfig) -> Path:
    """DeepPrune vs self-consistency@n: accuracy, tokens, tokens saved, wall time."""
    from parareason.api import Engine
    from parareason.bench.report import write_section
    from parareason.judge.factory import make_judge
    from parareason.judge.heads import resolve_auto
    from parareason.pruning.deepprune import DeepPruneParams, DeepPrunePolicy

    data_path, limit, offset, n, seed, model = cfg.data_path, cfg.limit, cfg.offset, cfg.n, cfg.seed, cfg.model
    judge_kind, head, calibration, threshold = cfg.judge_kind, cfg.head, cfg.calibration, cfg.threshold
    check_every, reps_per_cluster, max_new_tokens = cfg.check_every, cfg.reps_per_cluster, cfg.max_new_tokens
    temperature, max_concurrent, backend, urls = cfg.temperature, cfg.max_concurrent, cfg.backend, cfg.urls
    out, results_path = cfg.out, cfg.results_path
    judge_kind, head = resolve_auto(judge_kind, head, model)  # what `--policy deepprune` picks by default
    if judge_kind == "trained" and not head:
        raise ValueError("judge 'trained' needs a head (see `parareason judge train`)")
    rows = load_questions(data_path, limit, offset)
    judge = make_judge(judge_kind, head=head, calibration=calibration)  # loaded once, shared by all requests
    params = DeepPruneParams(width=n, check_every=check_every, threshold=threshold,
                             reps_per_cluster=reps_per_cluster, judge=judge_kind, head=head, calibration=calibration)
    policy = DeepPrunePolicy(params, judge=judge)
    thr = policy.threshold
    dp_settings = (f"width={n}, judge={judge_kind}, threshold={thr:.3f}, check_every={check_every}, "
                   f"reps={reps_per_cluster}")
    print(f"{len(rows)} questions from {data_path}, n={n}, model={model}, seed={seed}, judge={judge_kind}")
    runs: list[BenchRun] = []
    results_file = results_path.open("w", encoding="utf-8") if results_path else None
    common = dict(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                  max_concurrent=max_concurrent, keep_trace=False)
    try:
        with Engine(model, backend=backend, urls=urls) as engine:
            for name, pol, args, settings in (("self_consistency", "self_consistency", {"n": n}, f"n={n}"),
                                              ("deepprune", policy, {}, dp_settings)):
                t0 = time.perf_counter()
                results = engine.run(rows, policy=pol, policy_args=args, **common)
                r = summarize(name, settings, results, time.perf_counter() - t0)
                runs.append(r)
                write_results(results_file, results)
                print(f"{name:18s} acc {r.accuracy:6.1%}  tokens {r.generated_tokens:8d}  pruned {r.pruned:4d}  "
                      f"wall {r.wall_s:7.1f}s  errors {r.errors}")
    finally:
        if results_file is not None:
            results_file.close()
    table = render_table(runs)
    judge_desc = {"embedding": "all-MiniLM-L6-v2 cosine" + (f", calibration `{calibration}`" if calibration else
                                                            ", default calibration"),
                  "trained": f"trained head `{head}`"}[judge_kind]
    body = (f"Model `{model}`, {len(rows)} questions of `{data_path.name}` (rows {offset}-{offset + len(rows) - 1}), n={n}, "
            f"temperature={temperature}, max_new_tokens={max_new_tokens}, seed={seed}, "
            f"{max_concurrent} questions per batch, backend {backend}. DeepPrune judge: {judge_desc}. "
            f"Accuracy is math-verify equivalence with the reference; tokens are generated tokens summed over "
            f"questions; 'tokens saved vs SC' is measured (SC's tokens minus DeepPrune's); the policy estimate "
            f"charges each pruned sample its cluster's finished length minus what it had generated; wall is the "
            f"policy's whole run on one loaded model, judge included.\n\n{table}")
    path = write_section("DeepPrune vs self-consistency", body, path=out)
    print(table)
    print(f"wrote {path}")
    return path
