"""`parareason bench deepprune` end to end on the scripted test double (no LLM; the
embedding judge is the real MiniLM). Scripted replies are identical per question, so
DeepPrune must prune all but one sample of each and still answer like SC@n."""
from __future__ import annotations

import json

from click.testing import CliRunner

from parareason.cli.main import main

ROWS = [{"id": "q1", "question": "What is 2+2?", "answer": "4"},
        {"id": "q2", "question": "What is 3*3?", "answer": "9"}]
TABLE = {"2+2": "We add two and two. " * 12 + "The answer is \\boxed{4}.",
         "3*3": "Three times three is nine. " * 12 + "The answer is \\boxed{9}."}


def test_bench_deepprune_writes_section(tmp_path, monkeypatch):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(TABLE))
    monkeypatch.setenv("PARAREASON_SCRIPTED_TOKENS_PER_STEP", "8")
    out, results = tmp_path / "B.md", tmp_path / "r.jsonl"
    r = CliRunner().invoke(main, ["bench", "deepprune", "--data", str(data), "--limit", "2", "--n", "4",
                                  "--backend", "scripted", "--judge", "embedding", "--check-every", "32", "--out", str(out),
                                  "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "## DeepPrune vs self-consistency" in text and "| deepprune |" in text
    res = [json.loads(line) for line in results.read_text().splitlines()]
    sc, dp = res[:2], res[2:]
    assert all(x["correct"] for x in res)
    assert [t["status"] for t in dp[0]["threads"]].count("pruned") == 3  # identical replies
    assert sum(x["usage"]["generated_tokens"] for x in dp) < sum(x["usage"]["generated_tokens"] for x in sc)
    row = next(line for line in text.splitlines() if line.startswith("| deepprune |"))
    assert "| 6 |" in row  # pruned samples over both questions
