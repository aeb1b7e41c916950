"""`parareason replay TRACES`: run policies over recorded traces, no model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from parareason.cli.options import config_option, parse_policy_args, rows_option, select_rows


@click.command("replay", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("traces", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option("--policy", "--policies", "policies", default="sc", show_default=True,
              help="Policy, or comma-separated policies (the first is the baseline of every comparison).")
@click.option("--policy-arg", "policy_args", multiple=True, metavar="[POLICY.]KEY=VALUE",
              help="Policy parameter (repeatable); 'ffs.k=2' targets one policy.")
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=None,
              help="Samples per question the policy may use (default: as many as were recorded).")
@click.option("--budget", type=click.IntRange(min=1), default=None, help="Max generated tokens per request.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Order in which recorded traces are handed to samples.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Recorded tokens delivered per backend step (how often policies look).")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@rows_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions (after --rows).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--resume", is_flag=True, help="Keep finished results in --out-dir, run the rest.")
@click.option("--force", is_flag=True, help="With --resume: accept results made with other settings.")
@click.option("--quiet", "-q", is_flag=True)
def replay(traces: Path, policies: str, policy_args: tuple[str, ...], n: int | None, budget: int | None,
           seed: int, chunk_size: int, concurrency: int, row_range: str | None, limit: int | None, out_dir: Path, resume: bool,
           force: bool, quiet: bool) -> None:
    """Run policies over TRACES (from `parareason record`) without a model and write the
    same outputs as `eval` (results-<policy>.jsonl, summary.json/.md, plot).

    Deterministic under --seed: recorded traces are handed to a request's samples in a
    seeded order and delivered --chunk-size tokens per step; aborts are honoured.

    \b
    Limits (a replay cannot create what was never recorded):
    * a policy asking for more samples than recorded gets them ended with an error;
    * prompts never recorded (e.g. SCALE's sub-prompts, another protocol) fail the same way;
    * temperature/top-p/seed overrides cannot change recorded tokens (multi-temperature
      policies replay the recorded temperature);
    * samples end where the recording ended (its max_new_tokens);
    * top-k logprobs exist only if recorded with --top-logprobs;
    * latency and wall time measure the replay, not the model.
    """
    from parareason.api import Engine
    from parareason.cli.eval_cmd import check_policies, evaluate_policies, split_policy_args
    from parareason.io.prompts import PromptRow
    from parareason.backends.replay.tracefile import TraceFileError, load_trace_file
    from parareason.backends.registry import load_backend
    from parareason.models import DEFAULT_MODEL

    try:
        questions = load_trace_file(traces)
    except TraceFileError as e:
        raise click.BadParameter(str(e), param_hint="TRACES") from None
    questions = select_rows(questions, row_range)
    if limit:
        questions = questions[:limit]
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names or len(set(names)) != len(names):
        raise click.BadParameter("give distinct, comma-separated policy names", param_hint="--policy")
    sampling = questions[0].sampling
    recorded_n = min(q.n_traces for q in questions)
    n = n or recorded_n
    per_policy = split_policy_args(parse_policy_args(policy_args), names)
    check_policies(names, per_policy, n)
    rows = [PromptRow(id=q.id, prompt=q.prompt, answer=q.reference, line=i)
            for i, q in enumerate(questions, 1)]
    base_config = {"traces": str(traces), "replay_seed": seed, "chunk_size": chunk_size, "n": n,
                   "budget": budget, "recorded": sampling, "model": questions[0].model}
    options = dict(protocol="plain", n=n, max_new_tokens=int(sampling.get("max_new_tokens", 512)),
                   temperature=float(sampling.get("temperature", 0.7)), top_p=float(sampling.get("top_p", 1.0)),
                   seed=int(sampling.get("seed", 0)), budget=budget, deadline=None, max_concurrent=concurrency)
    backends: list[Any] = []

    def engine_for(_policy: str) -> Any:
        # a fresh backend per policy: every policy sees the recorded traces from the start
        b = load_backend("replay", questions=questions, seed=seed, chunk_size=chunk_size)
        backends.append(b)
        # the recorded model names the request's model: DeepPrune's auto judge picks its head by it
        return Engine(questions[0].model or DEFAULT_MODEL, backend=b)

    evaluate_policies(rows=rows, policies=names, out_dir=out_dir, engine_for=engine_for, options=options,
                      per_policy_args=per_policy, base_config=base_config, resume=resume, force=force,
                      quiet=quiet, meta={"dataset": str(traces), "rows": len(rows), "replay": True,
                                         **base_config})
    keys = ("exhausted", "unknown_context", "sampling_ignored", "top_logprobs_missing")
    notes = {k: sum(b.stats[k] for b in backends) for k in keys}
    if any(notes.values()):
        click.echo(f"replay limits hit: {notes['exhausted']} sample(s) beyond the recorded ones, "
                   f"{notes['unknown_context']} never-recorded prompt(s), {notes['sampling_ignored']} "
                   "sample(s) whose sampling overrides could not change recorded tokens, "
                   f"{notes['top_logprobs_missing']} sample(s) asking for top logprobs that were not "
                   "recorded (record with --top-logprobs K)")
