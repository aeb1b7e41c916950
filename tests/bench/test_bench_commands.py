"""Every `parareason bench NAME` resolves through cli/bench_cmd.py's lazy table to a click
command in parareason/cli/bench/, whose measurement is a plain function in parareason/bench/."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from parareason.bench.scheduler_bench import run_scheduler_bench
from parareason.cli.bench_cmd import BENCHMARKS
from parareason.cli.main import main


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_has_help(name):
    res = CliRunner().invoke(main, ["bench", name, "--help"])
    assert res.exit_code == 0, res.output
    assert f"bench {name} [OPTIONS]" in res.output and "--out" in res.output
    assert BENCHMARKS[name].startswith("parareason.cli.bench.")


def test_scheduler_bench_from_the_command_and_as_a_plain_function(tmp_path):
    out = tmp_path / "B.md"
    res = CliRunner().invoke(main, ["bench", "scheduler", "--threads", "2,4", "--tokens", "16", "--no-engine",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "## Scheduler overhead" in text and "| 2 |" in text and "| 4 |" in text
    path = run_scheduler_bench([3], 16, False, "unused", 1, 0, tmp_path / "C.md")
    assert "| 3 |" in path.read_text() and "--no-engine" in path.read_text()
    bad = CliRunner().invoke(main, ["bench", "scheduler", "--threads", "x", "--no-engine", "--out", str(out)])
    assert bad.exit_code == 2 and "comma-separated integers" in bad.output
