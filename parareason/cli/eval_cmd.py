"""`parareason eval DATASET`: several policies over one dataset, graded, summarised.

Writes into --out-dir: results-<policy>.jsonl (resumable, one per policy),
summary.json, summary.md (accuracy with its 95% bootstrap CI, the paired CI of its
difference to the first policy, tokens and wall time against the first policy, and the
SC@k curve from self-consistency's own samples; see io/statistics.py) and
accuracy_vs_tokens.png. `parareason replay` reuses `evaluate_policies` with a
ReplayBackend, so its outputs have the same shape.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from parareason.cli.protocol_args import protocol_arg_option, protocol_args_for
from parareason.cli.options import (
    FiniteFloatRange, check_backend_args, config_option, engine_options, model_options, output_options,
    parse_policy_args, protocol_option, sampling_options,
)


def split_policy_args(pargs: dict[str, Any], policies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`key=v` applies to every policy that takes `key`; `policy.key=v` to that policy only."""
    out: dict[str, dict[str, Any]] = {p: {} for p in policies}
    for key, v in pargs.items():
        if "." in key:
            pol, k = key.split(".", 1)
            if pol not in out:
                raise click.BadParameter(f"{key!r} names policy {pol!r}, which is not in --policies",
                                         param_hint="--policy-arg")
            out[pol][k] = v
            continue
        takers = [p for p in policies if key in _params_of(p)]
        if not takers:
            raise click.BadParameter(f"no policy in {list(policies)} takes {key!r}", param_hint="--policy-arg")
        for p in takers:
            out[p][key] = v
    return out


def _params_of(name: str) -> list[str]:
    from parareason.policies.registry import policy_params

    try:
        return policy_params(name)
    except ValueError:  # unknown policy: check_policies reports it
        return []


def check_policies(policies: Sequence[str], per_policy_args: dict[str, dict[str, Any]], n: int | None) -> None:
    from parareason.policies.build import make_policy_instance

    for p in policies:
        try:
            make_policy_instance(p, per_policy_args.get(p, {}), n)
        except (ValueError, TypeError) as e:
            raise click.BadParameter(str(e), param_hint="--policies/--policy-arg") from None


def load_dataset(path: Path, limit: int | None, *, need_answers: bool = True) -> list[Any]:
    from parareason.io.prompts import PromptInputError, load_prompts

    try:
        rows = load_prompts(path)
    except PromptInputError as e:
        raise click.BadParameter(str(e), param_hint="DATASET") from None
    if need_answers:
        missing = next((r for r in rows if r.answer is None), None)
        if missing is not None:
            raise click.BadParameter(f"{path}:{missing.line}: no 'answer'; eval grades against references",
                                     param_hint="DATASET")
    return rows[:limit] if limit else rows


def evaluate_policies(*, rows: list[Any], policies: Sequence[str], out_dir: Path,
                      engine_for: Callable[[str], Any], options: dict[str, Any],
                      per_policy_args: dict[str, dict[str, Any]], base_config: dict[str, Any],
                      resume: bool, force: bool, quiet: bool, meta: dict[str, Any]) -> list[Any]:
    """Run each policy over `rows`, one resumable results file per policy, then write the
    summary files. `engine_for(policy)` returns the Engine to use (shared or fresh)."""
    from rich.console import Console

    from parareason.io.progress import make_reporter, summary_table
    from parareason.cli.options import open_results
    from parareason.io.statistics import sc_at_k_curve
    from parareason.io.summary import summarize, with_baseline, write_summary

    out_dir.mkdir(parents=True, exist_ok=True)
    walls_path = out_dir / "wall_times.json"  # wall seconds per policy, summed over resumed invocations
    walls: dict[str, float] = json.loads(walls_path.read_text()) if resume and walls_path.exists() else {}
    summaries = []
    results_of: dict[str, list[Any]] = {}
    for policy in policies:
        pargs = per_policy_args.get(policy, {})
        config = {**base_config, "policy": policy, "policy_args": pargs}
        writer = open_results(out_dir / f"results-{policy}.jsonl", config, resume=resume, force=force)
        try:
            todo = [r for r in rows if r.id not in writer.done_ids]
            click.echo(f"[{policy}] {len(rows) - len(todo)} of {len(rows)} already done -> {writer.path}")
            if todo:
                engine = engine_for(policy)
                if engine.backend.facts:  # known only once loaded: added to this run's settings
                    writer.write_settings(engine.backend.facts)
                reporter = make_reporter(len(rows), already_done=len(rows) - len(todo), quiet=quiet,
                                         label=policy)

                def finished(result: Any, reporter: Any = reporter) -> None:
                    writer.append(result)
                    reporter.prompt_done(result)

                t0 = time.monotonic()
                try:
                    run_policy(engine, todo, finished, reporter, writer.path,
                               {**options, "policy": policy, "policy_args": pargs})
                finally:
                    reporter.close()
                    walls[policy] = walls.get(policy, 0.0) + time.monotonic() - t0
                    walls_path.write_text(json.dumps(walls, indent=1))
            done = [writer.existing.rows[r.id] for r in rows if r.id in writer.existing.rows]
        finally:
            writer.close()
        results_of[policy] = done
        summaries.append(summarize(policy, done, wall_s=walls.get(policy, 0.0)))
    summaries = with_baseline(summaries)
    source = sc_curve_source(policies)
    curve = sc_at_k_curve(results_of[source]) if source is not None else []
    facts = backend_facts(results_of)
    paths = write_summary(out_dir, summaries, {**meta, **({"backend_facts": facts} if facts else {})},
                          curve=curve, curve_policy=source)
    Console(highlight=False, width=200).print(summary_table(summaries, title=f"{meta.get('dataset', '')}"))
    if curve:
        click.echo(f"SC@k from {source}'s samples: " + ", ".join(
            f"k={p.k} {100 * p.accuracy:.1f}% at {p.tokens_per_prompt:.0f} tokens" for p in curve))
    click.echo(f"wrote {paths['md']}, {paths['json']}, {paths['png']}")
    return summaries


def backend_facts(results_of: dict[str, list[Any]]) -> dict[str, Any] | None:
    """The backend's facts as the results recorded them (`details["backend"]`, set by the API),
    so a fully resumed eval that loads no backend still reports them."""
    for rows in results_of.values():
        for row in rows:
            facts = (row.get("details") or {}).get("backend")
            if facts:
                return dict(facts)
    return None


def sc_curve_source(policies: Sequence[str]) -> str | None:
    """Whose samples the SC@k curve is drawn from: the baseline (first policy) when it is
    self-consistency, else the first self-consistency policy listed, else none."""
    from parareason.policies.registry import ALIASES

    return next((p for p in policies if ALIASES.get(p, p) == "self_consistency"), None)


def run_policy(engine: Any, todo: list[Any], finished: Callable[[Any], None], reporter: Any, out: Path,
               options: dict[str, Any]) -> None:
    from parareason.cli.options import backend_failure
    from parareason.backends.base import BackendError

    try:
        engine.run(todo, on_result=finished,
                   on_step=lambda s: reporter.update(live_threads=s.get("live_threads", 0),
                                                     generated_tokens=s.get("generated_tokens", 0)),
                   **options)
    except BackendError as e:
        raise backend_failure(e, out) from None


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", type=click.Path(dir_okay=True, path_type=Path))
@config_option
@model_options
@click.option("--policies", default="sc", show_default=True,
              help="Comma-separated policies; the first is the baseline of every comparison (e.g. sc,ffs,deepconf).")
@click.option("--policy-arg", "policy_args", multiple=True, metavar="[POLICY.]KEY=VALUE",
              help="Policy parameter (repeatable); 'ffs.k=2' targets one policy, 'k=2' every policy taking k.")
@protocol_option()
@protocol_arg_option
@sampling_options
@click.option("--budget", type=click.IntRange(min=1), default=None, help="Max generated tokens per request.")
@click.option("--deadline", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Wall-clock seconds per request.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Requests sharing the backend's batch at once.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N rows.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@output_options
def eval_cmd(dataset: Path, model: str, backend: str, urls: tuple[str, ...], dtype: str, weights: str, policies: str,
             policy_args: tuple[str, ...], protocol: str, protocol_args: tuple[str, ...], n: int,
             max_new_tokens: int, temperature: float, top_p: float, seed: int, budget: int | None, deadline: float | None, concurrency: int,
             limit: int | None, out_dir: Path, resume: bool, force: bool, quiet: bool) -> None:
    """Evaluate policies on DATASET (JSONL with question/prompt + answer), graded with
    math-verify. The model is loaded once and shared by all policies."""
    from parareason.cli.preflight import cap_width

    check_backend_args(backend, urls)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names or len(set(names)) != len(names):
        raise click.BadParameter("give distinct, comma-separated policy names", param_hint="--policies")
    rows = load_dataset(dataset, limit)
    per_policy = split_policy_args(parse_policy_args(policy_args), names)
    check_policies(names, per_policy, n)
    protocol_config = protocol_args_for(protocol, protocol_args, model)
    asked_n, n = n, cap_width(rows, n)  # as in run: a capped n is what runs, so it is what is recorded
    base_config = {"model": model, "backend": backend, **engine_options(backend, dtype, weights), "protocol": protocol,
                   "protocol_args": protocol_config, "n": n, **({"n_asked": asked_n} if asked_n != n else {}),
                   "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                   "seed": seed, "budget": budget, "deadline": deadline}
    options = dict(protocol=protocol, protocol_args=protocol_config, n=n, max_new_tokens=max_new_tokens,
                   temperature=temperature, top_p=top_p, seed=seed, budget=budget, deadline=deadline, max_concurrent=concurrency)
    engine: list[Any] = []

    def engine_for(_policy: str) -> Any:
        if not engine:  # loaded on first need: a fully resumed eval never loads the model
            from parareason.cli.options import open_engine

            engine.append(open_engine(model, backend, urls, dtype, weights))
        return engine[0]

    try:
        evaluate_policies(rows=rows, policies=names, out_dir=out_dir, engine_for=engine_for, options=options,
                          per_policy_args=per_policy, base_config=base_config, resume=resume, force=force,
                          quiet=quiet, meta={"dataset": str(dataset), "rows": len(rows), **base_config})
    finally:
        if engine:
            engine[0].close()
