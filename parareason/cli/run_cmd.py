"""`parareason run PROMPTS`: run prompts through a policy, append results as they finish."""
from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from parareason.cli.protocol_args import protocol_arg_option, protocol_args_for
from parareason.cli.options import (
    POLICY_HELP, check_backend_args, config_option, engine_options, model_options, output_options,
    parse_policy_args, protocol_option, sampling_options,
)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("prompts", type=click.Path(dir_okay=True, path_type=Path))
@config_option
@model_options
@protocol_option()
@protocol_arg_option
@click.option("--policy", default="sc", show_default=True,
              help=POLICY_HELP)
@click.option("--policy-arg", "policy_args", multiple=True, metavar="KEY=VALUE",
              help="Policy parameter (repeatable), e.g. --policy-arg k=2; values parse as JSON.")
@sampling_options
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Max generated tokens per request (all its threads together).")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-clock seconds per request.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Requests sharing the backend's batch at once.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results JSONL (default: runs/<timestamp>.jsonl).")
@output_options
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every runtime event (spawn, join, prune, ...) to this JSONL file.")
def run(prompts: Path, model: str, backend: str, urls: tuple[str, ...], dtype: str, protocol: str,
        protocol_args: tuple[str, ...], policy: str, policy_args: tuple[str, ...], n: int, max_new_tokens: int,
        temperature: float, top_p: float, seed: int, budget: int | None, deadline: float | None, concurrency: int, out: Path | None,
        resume: bool, force: bool, quiet: bool, trace_path: Path | None) -> None:
    """Run the prompts in PROMPTS (JSONL or one prompt per line) and write one JSON
    result per prompt to --out, flushed as each finishes.

    JSONL rows: {"id", "prompt" (or "question"), "answer" (optional, enables grading),
    optional overrides "n", "temperature", "top_p", "max_new_tokens", "seed", "budget",
    "policy", "protocol"}. The whole file is checked before the model loads.

    Interrupted? Rerun the same command with --resume --out FILE: finished prompts are
    kept, a half-written last line is repaired, the rest run again.
    """
    from parareason.io.prompts import PromptInputError, load_prompts

    check_backend_args(backend, urls)
    try:
        rows = load_prompts(prompts)
    except PromptInputError as e:
        raise click.BadParameter(str(e), param_hint="PROMPTS") from None
    pargs = parse_policy_args(policy_args)
    protocol_config = protocol_args_for(protocol, protocol_args)
    validate_policies(rows, policy, pargs, n)
    config = {"model": model, "backend": backend, **engine_options(backend, dtype), "protocol": protocol,
              "protocol_args": protocol_config, "policy": policy,
              "policy_args": pargs, "n": n, "max_new_tokens": max_new_tokens, "temperature": temperature,
              "top_p": top_p, "seed": seed, "budget": budget, "deadline": deadline}
    t_start = time.monotonic()
    out = out or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}.jsonl"
    writer = open_writer(out, config, resume=resume, force=force, rows=rows)
    try:
        todo = [r for r in rows if r.id not in writer.done_ids]
        click.echo(f"results -> {out}  ({len(rows) - len(todo)} of {len(rows)} already done)")
        if todo:
            execute(todo, writer, total=len(rows), model=model, backend=backend, urls=urls, dtype=dtype, quiet=quiet,
                    trace_path=trace_path,
                    options=dict(policy=policy, policy_args=pargs, protocol=protocol,
                                 protocol_args=protocol_config, n=n,
                                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                 seed=seed, budget=budget, deadline=deadline, max_concurrent=concurrency))
        print_summary(policy, [writer.existing.rows[r.id] for r in rows if r.id in writer.existing.rows],
                      wall_s=time.monotonic() - t_start, quiet=quiet)
        click.echo(f"results: {out}")
    finally:
        writer.close()


def validate_policies(rows: list[Any], policy: str, pargs: dict[str, Any], n: int) -> None:
    """Build each distinct policy once now, so a bad name or parameter fails before loading."""
    from parareason.policies.build import policy_for_row
    from parareason.runtime.protocols import protocol_names

    seen: set[tuple[str, int]] = set()
    for r in rows:
        key = (r.overrides.get("policy", policy), r.overrides.get("n", n))
        proto = r.overrides.get("protocol")
        if proto is not None and proto not in protocol_names():
            raise click.BadParameter(f"line {r.line}: unknown protocol {proto!r}; choose one of "
                                     f"{', '.join(protocol_names())}", param_hint="PROMPTS")
        if key in seen:
            continue
        seen.add(key)
        try:
            policy_for_row(r.overrides.get("policy"), policy, pargs, r.overrides.get("n", n))
        except (ValueError, TypeError) as e:
            where = "--policy/--policy-arg" if key[0] == policy else f"PROMPTS line {r.line}"
            raise click.BadParameter(str(e), param_hint=where) from None


def open_writer(out: Path, config: dict[str, Any], *, resume: bool, force: bool, rows: list[Any]) -> Any:
    from parareason.cli.options import open_results

    writer = open_results(out, config, resume=resume, force=force)
    by_id = {r.id: r for r in rows}
    changed = [rid for rid, row in writer.existing.rows.items()
               if rid in by_id and row.get("prompt") != by_id[rid].prompt]
    if changed and not force:
        writer.close()
        raise click.ClickException(
            f"{out}: {len(changed)} finished result(s) have a different prompt text than {changed[0]!r} "
            "in the input now. Use another --out, or --force to keep them.")
    if writer.existing.repaired_bytes:
        click.echo(f"repaired {out}: dropped a half-written last line ({writer.existing.repaired_bytes} bytes)")
    return writer


def execute(todo: list[Any], writer: Any, *, total: int, model: str, backend: str, urls: tuple[str, ...],
            dtype: str = "auto", quiet: bool, trace_path: Path | None, options: dict[str, Any]) -> None:
    from parareason.cli.options import backend_failure, open_engine
    from parareason.io.progress import make_reporter
    from parareason.backends.base import BackendError

    engine = open_engine(model, backend, urls, dtype)
    click.echo(f"running {len(todo)} prompt(s)")
    sink = None
    if trace_path is not None:
        from parareason.runtime.trace import JsonlTraceWriter

        sink = JsonlTraceWriter(trace_path)
    reporter = make_reporter(total, already_done=total - len(todo), quiet=quiet, label="prompts")
    previous_sigterm = stop_on_sigterm()

    def finished(result: Any) -> None:
        writer.append(result)  # flushed + fsync'd before the next one
        reporter.prompt_done(result)

    try:
        engine.run(todo, on_result=finished,
                   on_step=lambda s: reporter.update(live_threads=s.get("live_threads", 0),
                                                     generated_tokens=s.get("generated_tokens", 0)),
                   trace_sink=sink, **options)
    except KeyboardInterrupt:
        reporter.close()
        click.echo(f"\ninterrupted: finished results are saved in {writer.path}; "
                   "rerun with --resume to finish the rest", err=True)
        sys.exit(130)
    except BackendError as e:
        raise backend_failure(e, writer.path) from None
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        reporter.close()
        if sink is not None:
            sink.close()
        engine.close()


def stop_on_sigterm() -> Any:
    """SIGTERM (a job scheduler, `timeout`) ends the run like Ctrl-C: the message says
    how to resume. Results already written are safe either way. Returns the previous
    handler (None off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, signal.default_int_handler)


def print_summary(policy: str, rows: list[dict[str, Any]], *, wall_s: float, quiet: bool) -> None:
    from rich.console import Console

    from parareason.io.progress import summary_table
    from parareason.io.summary import summarize

    s = summarize(policy, rows, wall_s=wall_s)
    tty = sys.stdout.isatty() and not quiet
    Console(highlight=False, width=None if tty else 140).print(
        summary_table([s], title="Summary (wall s: this invocation)"))
