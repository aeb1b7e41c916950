"""Progress while prompts run, and the summary table at the end.

On a terminal: a rich bar with prompts done, live threads, tokens/s and running
accuracy. With --quiet or when stdout is not a TTY (logs, CI, pipes): one plain line
per finished prompt, nothing redrawn.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Sequence

from rich.console import Console
from rich.table import Table

from parareason.io.summary import PolicySummary, comparison_cells
from parareason.runtime.result import Result


class ProgressReporter:
    """Plain-line reporter; `RichProgressReporter` adds a live bar."""

    def __init__(self, total: int, *, already_done: int = 0, file: IO[str] | None = None,
                 label: str = ""):
        self.total = total
        self.done = already_done
        self.label = label
        stream = file or sys.stdout
        tty = hasattr(stream, "isatty") and stream.isatty()
        # logs and pipes get a wide table rather than rich's 80-column default
        self.console = Console(file=stream, highlight=False, soft_wrap=True, width=None if tty else 140)
        self.graded = self.correct = 0
        self.tokens = 0
        self.live_threads = 0
        self.t0 = time.monotonic()

    # called by the run loop -----------------------------------------------------------
    def __enter__(self) -> "ProgressReporter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def update(self, *, live_threads: int, generated_tokens: int) -> None:
        """Scheduler-wide figures, polled between steps (generated_tokens is cumulative)."""
        self.live_threads = live_threads
        self.tokens = max(self.tokens, generated_tokens)

    def prompt_done(self, result: Result) -> None:
        self.done += 1
        if result.correct is not None:
            self.graded += 1
            self.correct += bool(result.correct)
        self._print_line(result)

    # figures --------------------------------------------------------------------------
    @property
    def accuracy(self) -> float | None:
        return self.correct / self.graded if self.graded else None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(time.monotonic() - self.t0, 1e-9)

    def _print_line(self, r: Result) -> None:
        verdict = {True: "correct", False: "wrong", None: "ungraded"}[r.correct]
        gen = (r.usage or {}).get("generated_tokens", 0)
        err = f" error={r.error}" if r.error else ""
        self.console.print(f"[{self.done}/{self.total}] {r.id} answer={r.answer!s} {verdict} "
                           f"tokens={gen} {r.latency_s:.1f}s{err}", markup=False)


class RichProgressReporter(ProgressReporter):
    def __init__(self, total: int, *, already_done: int = 0, file: IO[str] | None = None, label: str = ""):
        super().__init__(total, already_done=already_done, file=file, label=label)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                             console=self.console, transient=False)
        self._task = self._bar.add_task(label or "prompts", total=total, completed=already_done,
                                        stats=self._stats())
        self._bar.start()

    def _stats(self) -> str:
        acc = "" if self.accuracy is None else f" · acc {100 * self.accuracy:.0f}% ({self.correct}/{self.graded})"
        return f"threads {self.live_threads} · {self.tokens_per_s:.1f} tok/s{acc}"

    def update(self, *, live_threads: int, generated_tokens: int) -> None:
        super().update(live_threads=live_threads, generated_tokens=generated_tokens)
        self._bar.update(self._task, stats=self._stats())

    def _print_line(self, r: Result) -> None:
        self._bar.update(self._task, completed=self.done, stats=self._stats())

    def close(self) -> None:
        self._bar.stop()


def make_reporter(total: int, *, already_done: int = 0, quiet: bool = False, file: IO[str] | None = None,
                  label: str = "") -> ProgressReporter:
    stream = file or sys.stdout
    interactive = not quiet and hasattr(stream, "isatty") and stream.isatty()
    cls = RichProgressReporter if interactive else ProgressReporter
    return cls(total, already_done=already_done, file=stream, label=label)


def summary_table(summaries: Sequence[PolicySummary], title: str = "Summary") -> Table:
    t = Table(title=title)
    compare = len(summaries) > 1  # "vs baseline" only means something with several policies
    cols = ["policy", "prompts", "accuracy", "correct/graded", "gen tokens", "tokens/prompt"]
    cols += ["vs baseline"] if compare else []
    cols += ["seq tokens/prompt", "errors", "wall s", "acc 95% CI"]
    cols += ["acc vs baseline [95% paired CI]", "wall vs baseline"] if compare else []
    for col in cols:
        t.add_column(col, justify="left" if col == "policy" else "right")
    for s in summaries:
        acc = "n/a" if s.accuracy is None else f"{100 * s.accuracy:.1f}%"
        ratio = "n/a" if s.tokens_vs_baseline is None else f"{s.tokens_vs_baseline:.2f}x"
        # accuracy CI, paired difference to the baseline and wall ratio, as in summary.md
        ci, diff, wall = comparison_cells(s, summaries[0])
        cells = [s.policy, str(s.prompts), acc, f"{s.correct}/{s.graded}", str(s.generated_tokens),
                 f"{s.tokens_per_prompt:.1f}"] + ([ratio] if compare else []) + [
                 f"{s.sequential_tokens_per_prompt:.1f}", str(s.errors), f"{s.wall_s:.1f}", ci] + (
                 [diff, wall] if compare else [])
        t.add_row(*cells)
    return t
