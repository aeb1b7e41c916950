"""Progress reporting: a rich bar on a terminal, plain lines otherwise; summary table."""
from __future__ import annotations

import io

from parareason.io.progress import ProgressReporter, RichProgressReporter, make_reporter, summary_table
from parareason.io.summary import summarize, summary_markdown, with_baseline
from parareason.runtime.result import Result


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def result(i: int, correct: bool | None) -> Result:
    return Result(id=f"p{i}", prompt="q", answer=str(i), correct=correct, policy="sc", protocol="plain",
                  usage={"generated_tokens": 10 * i, "sequential_tokens": 4 * i}, latency_s=0.5)


def test_plain_lines_when_not_a_terminal_or_quiet():
    for stream, quiet in ((io.StringIO(), False), (FakeTTY(), True)):
        r = make_reporter(3, already_done=1, quiet=quiet, file=stream)
        assert type(r) is ProgressReporter
        r.update(live_threads=4, generated_tokens=100)
        r.prompt_done(result(1, True))
        r.prompt_done(result(2, False))
        r.close()
        lines = stream.getvalue().splitlines()
        assert lines == ["[2/3] p1 answer=1 correct tokens=10 0.5s", "[3/3] p2 answer=2 wrong tokens=20 0.5s"]
        assert r.accuracy == 0.5


def test_rich_bar_on_a_terminal_shows_threads_and_accuracy():
    stream = FakeTTY()
    r = make_reporter(2, quiet=False, file=stream)
    assert isinstance(r, RichProgressReporter)
    r.update(live_threads=6, generated_tokens=50)
    r.prompt_done(result(1, True))
    r._bar.refresh()
    out = stream.getvalue()
    assert "threads 6" in out and "tok/s" in out and "acc 100% (1/1)" in out and "1/2" in out
    r.close()


def test_summary_table_and_markdown_agree():
    s = with_baseline([summarize("sc", [result(1, True), result(2, False)], 2.0),
                       summarize("ffs", [result(1, True), result(2, None)], 1.0)])
    assert s[0].accuracy == 0.5 and s[1].accuracy == 1.0 and s[1].graded == 1
    assert s[1].tokens_vs_baseline == 1.0 and s[0].generated_tokens == 30
    md = summary_markdown(s)
    assert "| sc | 50.0% | 1/2 | 30 | 15.0 | 1.00x | 6.0 | 0 | 2.0 |" in md
    out = io.StringIO()
    from rich.console import Console

    Console(file=out, width=160).print(summary_table(s))
    assert "vs baseline" in out.getvalue() and "ffs" in out.getvalue()
