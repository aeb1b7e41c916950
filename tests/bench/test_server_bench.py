"""`parareason bench serve` end to end on the scripted test backend (no model): both
phases run through the HTTP server and the BENCHMARKS section is written."""
from __future__ import annotations

from click.testing import CliRunner

from parareason.cli.main import main


def test_bench_serve_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("PARAREASON_SCRIPTED_DEFAULT", "It is \\boxed{72}.")
    out = tmp_path / "BENCH.md"
    r = CliRunner().invoke(main, ["bench", "serve", "--backend", "scripted", "--model", "toy", "--requests", "3",
                                  "--n", "2", "--max-new-tokens", "32", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "## Server: concurrent requests vs one at a time" in text
    assert "| one at a time |" in text and "| 3 concurrent |" in text and "speed-up" in text
    # each phase: 3 requests x 2 samples x 17 one-char tokens; only row 0's gold answer is 72
    assert text.count("| 102 |") == 2 and text.count("| 1/3 | 0 |") == 2, text
