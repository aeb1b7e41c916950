"""`parareason traces stats|compact|compare`: look into a trace file, shrink one for
committing, set recordings of the same rows side by side."""
from __future__ import annotations

from pathlib import Path

import click

from parareason.cli.options import labelled_trace_files


@click.group()
def traces() -> None:
    """Inspect and compact trace files written by `parareason record`."""


@traces.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def stats(path: Path) -> None:
    """Questions, traces, tokens, and the share of traces cut at max_new_tokens."""
    from parareason.backends.replay.trace_stats import trace_stats
    from parareason.backends.replay.tracefile import TraceFileError, load_trace_file

    try:
        questions = load_trace_file(path)
    except TraceFileError as e:
        raise click.ClickException(str(e)) from None
    for line in trace_stats(questions).lines():
        click.echo(line)


@traces.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--logprob-decimals", type=click.IntRange(0, 8), default=3, show_default=True)
@click.option("--top-decimals", type=click.IntRange(0, 8), default=2, show_default=True,
              help="Decimals of the alternatives' logprobs (DeepConf's confidence is their mean).")
@click.option("--keep-top-ids", is_flag=True, help="Keep the alternatives' token ids (no policy reads them).")
def compact(src: Path, dst: Path, logprob_decimals: int, top_decimals: int, keep_top_ids: bool) -> None:
    """Write SRC's complete questions to DST (*.xz) with rounded logprobs; `replay` reads it as is."""
    from parareason.backends.replay.compact import CompactOptions, compact_trace_file
    from parareason.backends.replay.tracefile import TraceFileError

    try:
        n = compact_trace_file(src, dst, CompactOptions(logprob_decimals, top_decimals, keep_top_ids))
    except (TraceFileError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{n} questions -> {dst} ({dst.stat().st_size / 1e6:.1f} MB; {src} was "
               f"{src.stat().st_size / 1e6:.1f} MB)")


@traces.command()
@click.argument("files", nargs=-1, required=True, metavar="LABEL=PATH...",
                callback=labelled_trace_files("LABEL", "1.5b=runs/m15.traces.jsonl"))
@click.option("--k", type=click.IntRange(min=1), default=8, show_default=True, help="Traces per SC vote.")
@click.option("--base", default=None, help="The LABEL the others are paired against (default: the first).")
def compare(files: dict[str, Path], k: int, base: str | None) -> None:
    """SC@k of recordings of the same rows (other models, weights or settings), each
    against the base: paired 95% CIs on the questions all files have, tokens spent."""
    from parareason.bench.sc_compare import sc_comparison
    from parareason.backends.replay.tracefile import TraceFileError

    base = base or next(iter(files))
    if base not in files:
        raise click.BadParameter(f"{base!r} is not one of the labels {', '.join(files)}", param_hint="--base")
    try:
        click.echo(sc_comparison(files, k, base=base, label="recording"))
    except TraceFileError as e:
        raise click.ClickException(str(e)) from None
