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
    POLICY_HELP, FiniteFloatRange, check_backend_args, config_option, engine_options, model_options, output_options,
    parse_policy_args, protocol_option, sampling_options,
)

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: the shell's convention for "ended by SIGTERM"
SIGINT_EXIT = 128 + signal.SIGINT  # 130


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
@click.option("--deadline", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Wall-clock seconds per request.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Requests sharing the backend's batch at once.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results JSONL (default: runs/<timestamp>.jsonl).")
@output_options
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every runtime event (spawn, join, prune, ...) to this JSONL file.")
def run(prompts: Path, model: str, backend: str, urls: tuple[str, ...], dtype: str, weights: str, protocol: str,
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
    from parareason.cli.preflight import cap_width, check_model, check_run_paths, validate_policies
    from parareason.io.prompts import PromptInputError, load_prompts

    check_backend_args(backend, urls)
    try:
        rows = load_prompts(prompts)
    except PromptInputError as e:
        raise click.BadParameter(str(e), param_hint="PROMPTS") from None
    pargs = parse_policy_args(policy_args)
    protocol_config = protocol_args_for(protocol, protocol_args, model)
    validate_policies(rows, prompts, policy, pargs, n)
    out = out or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}.jsonl"
    check_run_paths(prompts, out, trace_path)  # before anything is created...
    check_model(model, backend)  # ...or loaded
    asked_n, n = n, cap_width(rows, n)  # a capped n is what runs, so it is what is recorded
    # protocol_args only when given: runs written before the option existed keep their fingerprint
    config = {"model": model, "backend": backend, **engine_options(backend, dtype, weights), "protocol": protocol,
              **({"protocol_args": protocol_config} if protocol_config else {}), "policy": policy,
              "policy_args": pargs, "n": n, "max_new_tokens": max_new_tokens, "temperature": temperature,
              "top_p": top_p, "seed": seed, "budget": budget, "deadline": deadline,
              **({"n_asked": asked_n} if asked_n != n else {})}
    t_start = time.monotonic()
    writer = open_writer(out, config, resume=resume, force=force, rows=rows)
    try:
        todo = [r for r in rows if r.id not in writer.done_ids]
        click.echo(f"results -> {out}  ({len(rows) - len(todo)} of {len(rows)} already done)")
        if todo:
            execute(todo, writer, total=len(rows), model=model, backend=backend, urls=urls, dtype=dtype, weights=weights, quiet=quiet,
                    trace_path=trace_path,
                    options=dict(policy=policy, policy_args=pargs, protocol=protocol,
                                 protocol_args=protocol_config, n=n,
                                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                 seed=seed, budget=budget, deadline=deadline, max_concurrent=concurrency))
        results = [writer.existing.rows[r.id] for r in rows if r.id in writer.existing.rows]
        print_summary(policy, results, wall_s=time.monotonic() - t_start, quiet=quiet)
        click.echo(f"results: {out}")
    finally:
        writer.close()
    failed = [r for r in results if r.get("error")]
    if failed:  # the other rows' results are kept; the exit status says some failed
        raise click.ClickException(f"{len(failed)} of {len(rows)} prompt(s) failed, e.g. "
                                   f"{failed[0].get('id')}: {failed[0]['error']}")


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
    if writer.existing.retried:
        click.echo(f"running {len(writer.existing.retried)} prompt(s) again whose result was an error "
                   f"(e.g. {writer.existing.retried[0]!r})")
    if writer.existing.repaired_bytes:
        click.echo(f"repaired {out}: dropped a half-written last line ({writer.existing.repaired_bytes} bytes)")
    if writer.existing.added_newline:
        click.echo(f"repaired {out}: its last result lacked the final newline (kept, newline added)")
    return writer


def execute(todo: list[Any], writer: Any, *, total: int, model: str, backend: str, urls: tuple[str, ...],
            dtype: str = "auto", weights: str = "full", quiet: bool, trace_path: Path | None, options: dict[str, Any]) -> None:
    from parareason.cli.options import backend_failure, open_engine
    from parareason.io.progress import make_reporter
    from parareason.backends.base import BackendError

    engine = open_engine(model, backend, urls, dtype, weights)
    if engine.backend.facts:  # known only now: the settings sidecar gets them (results' rows too, by the API)
        writer.write_settings(engine.backend.facts)
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
    except KeyboardInterrupt as e:
        reporter.close()
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        click.echo(f"\n{what}: finished results are saved in {writer.path}; "
                   "rerun with --resume to finish the rest", err=True)
        sys.exit(SIGTERM_EXIT if isinstance(e, Terminated) else SIGINT_EXIT)
    except BackendError as e:
        raise backend_failure(e, writer.path) from None
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        reporter.close()
        if sink is not None:
            sink.close()
        engine.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C (so every `finally` runs) but exiting 143."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def stop_on_sigterm() -> Any:
    """SIGTERM (a job scheduler, `timeout`) ends the run like Ctrl-C: the message says
    how to resume, the exit status is 143. Results already written are safe either way.
    Returns the previous handler (None off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def print_summary(policy: str, rows: list[dict[str, Any]], *, wall_s: float, quiet: bool) -> None:
    from rich.console import Console

    from parareason.io.progress import summary_table
    from parareason.io.summary import summarize

    s = summarize(policy, rows, wall_s=wall_s)
    tty = sys.stdout.isatty() and not quiet
    Console(highlight=False, width=None if tty else 140).print(
        summary_table([s], title="Summary (wall s: this invocation)"))
