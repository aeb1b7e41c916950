"""`parareason bench policies` end to end on the ScriptedBackend test double (no model):
the table has every requested policy, SC first, and the section lands in the output file."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from parareason.bench.policies_bench import PolicyRun, policies, policy_settings, render_table

FIXTURE = Path(__file__).parent / "fixtures" / "gsm8k_train_rows.jsonl"


def test_bench_policies_on_the_scripted_backend(tmp_path, monkeypatch):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()[:2]]
    # the first question is answered right, the second wrong
    table = {rows[0]["question"][:40]: f"So \\boxed{{{rows[0]['answer']}}}.", rows[1]["question"][:40]: "\\boxed{-1}"}
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(table))
    out, results = tmp_path / "BENCH.md", tmp_path / "results.jsonl"
    res = CliRunner().invoke(policies, ["--data", str(FIXTURE), "--limit", "2", "--n", "4", "--backend", "scripted",
                                        "--model", "none", "--policies", "ffs,rpc", "--out", str(out),
                                        "--results", str(results), "--policy-arg", "ffs.k=2"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "## Policies vs self-consistency" in text and "--limit" in text
    body_rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| policy")]
    assert [r.split("|")[1].strip() for r in body_rows] == ["self_consistency", "ffs", "rpc"]
    assert all("50.0% (1/2)" in r for r in body_rows)
    assert body_rows[0].split("|")[6].strip() == "100%"  # SC's tokens relative to itself
    assert "n=4, k=2" in body_rows[1] and "--policy-arg ffs.k=2" in text  # the override, shown and replayable
    written = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(written) == 6 and {r["policy"] for r in written} == {"self_consistency", "ffs", "rpc"}


def test_bench_rejects_unknown_policies(tmp_path):
    res = CliRunner().invoke(policies, ["--data", str(FIXTURE), "--policies", "nope", "--backend", "scripted",
                                        "--out", str(tmp_path / "b.md")])
    assert res.exit_code != 0 and "unknown policies" in res.output


def test_render_table_percentages_and_settings():
    sc = PolicyRun("self_consistency", {"n": 4}, 3, 4, 4, 1000, 10.0, 0)
    ffs = PolicyRun("ffs", policy_settings("ffs", 4), 2, 4, 4, 250, 5.0, 0)
    md = render_table([sc, ffs], sc)
    assert "| ffs | n=4 | 50.0% (2/4) | 4/4 | 250 | 25% | 5.0 | 50% | 0 |" in md
    assert policy_settings("scale", 16) == {"n": 4}
    assert policy_settings("deepconf", 16)["warmup"] == 4
