"""`parareason bench policies` end to end on the ScriptedBackend test double (no model):
the table has every requested policy, SC first, and the section lands in the output file."""
from __future__ import annotations

import json

from click.testing import CliRunner

from parareason.bench.policies_bench import PolicyRun, policy_settings, render_table
from parareason.cli.bench.policies import policies
from tests.support.paths import FIXTURES

FIXTURE = FIXTURES / "gsm8k_train_rows.jsonl"


def test_bench_policies_on_the_scripted_backend(tmp_path, monkeypatch):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()[:2]]
    # the first question is answered right, the second wrong
    table = {rows[0]["question"][:40]: f"So \\boxed{{{rows[0]['answer']}}}.", rows[1]["question"][:40]: "\\boxed{-1}"}
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(table))
    out, results = tmp_path / "BENCH.md", tmp_path / "results.jsonl"
    res = CliRunner().invoke(policies, ["--data", str(FIXTURE), "--limit", "2", "--n", "4", "--backend", "scripted",
                                        "--model", "none", "--policies", "ffs,rpc", "--out", str(out),
                                        "--results", str(results), "--policy-arg", "ffs.k=2",
                                        "--summary-dir", str(tmp_path / "summary")])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "## Policies vs self-consistency" in text and "--limit" in text
    policy_table = text.split("\n| policy |", 1)[1].split("\n\n", 1)[0]  # the SC@k table follows it
    body_rows = [line for line in policy_table.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in body_rows] == ["self_consistency", "ffs", "rpc"]
    assert all("50.0% (1/2)" in r for r in body_rows)
    assert body_rows[0].split("|")[6].strip() == "100%"  # SC's tokens relative to itself
    assert "n=4, k=2" in body_rows[1] and "--policy-arg ffs.k=2" in text  # the override, shown and replayable
    written = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(written) == 6 and {r["policy"] for r in written} == {"self_consistency", "ffs", "rpc"}
    # the statistics: accuracy CI, paired difference to SC (the same answers: exactly 0), SC@k curve
    assert "accuracy 95% CI" in text and "vs SC: accuracy [95% paired CI]" in text
    assert body_rows[0].rstrip().endswith("| [0.0, 100.0]% | baseline |")
    assert all(r.rstrip().endswith("| +0.0 pts [+0.0, +0.0] |") for r in body_rows[1:])
    assert "SC@k from self_consistency's own samples" in text
    assert "| 1 | 50.0% |" in text and "| 4 | 50.0% |" in text
    summary = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert [p["policy"] for p in summary["policies"]] == ["self_consistency", "ffs", "rpc"]
    assert summary["policies"][1]["accuracy_vs_baseline_ci"] == [0.0, 0.0]
    assert [p["k"] for p in summary["sc_at_k"]["points"]] == [1, 2, 4]
    assert (tmp_path / "summary" / "accuracy_vs_tokens.png").exists() and "--summary-dir" in text


def test_bench_rejects_unknown_policies(tmp_path):
    res = CliRunner().invoke(policies, ["--data", str(FIXTURE), "--policies", "nope", "--backend", "scripted",
                                        "--out", str(tmp_path / "b.md")])
    assert res.exit_code != 0 and "unknown policies" in res.output


def test_render_table_percentages_and_settings():
    sc = PolicyRun("self_consistency", {"n": 4}, 3, 4, 4, 1000, 10.0, 0, sequential_tokens=1000)
    ffs = PolicyRun("ffs", policy_settings("ffs", 4), 2, 4, 4, 250, 5.0, 0, sequential_tokens=250)
    md = render_table([sc, ffs], sc)
    assert "| ffs | n=4 | 50.0% (2/4) | 4/4 | 250 | 25% | 62 | 5.0 | 50% | 0 |" in md
    assert policy_settings("scale", 16) == {"n": 4}
    assert policy_settings("deepconf", 16)["warmup"] == 4


def _bench(tmp_path, *extra):
    return CliRunner().invoke(policies, ["--data", str(FIXTURE), "--limit", "2", "--n", "2", "--backend", "scripted",
                                         "--model", "none", "--policies", "ffs", "--out", str(tmp_path / "B.md"),
                                         "--results", str(tmp_path / "results.jsonl"), *extra])


def test_resume_keeps_finished_policies_and_reruns_changed_ones(tmp_path):
    results = tmp_path / "results.jsonl"
    assert _bench(tmp_path).exit_code == 0
    first = results.read_text()
    log_lines = (tmp_path / "results.jsonl.runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["run"]["policy"] for line in log_lines] == ["self_consistency", "ffs"]

    again = _bench(tmp_path, "--resume")
    assert again.exit_code == 0, again.output
    assert again.output.count("kept from") == 2
    assert results.read_text() == first  # nothing run twice, nothing lost
    assert "self_consistency | n=2" in (tmp_path / "B.md").read_text()

    changed = _bench(tmp_path, "--resume", "--policy-arg", "ffs.k=2")
    assert changed.exit_code == 0, changed.output
    assert changed.output.count("kept from") == 1  # SC kept, ffs rerun with its new setting
    written = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["policy"] for r in written].count("ffs") == 2 and len(written) == 4


def test_resume_drops_results_of_a_policy_cut_off_before_its_summary(tmp_path):
    results = tmp_path / "results.jsonl"
    assert _bench(tmp_path).exit_code == 0
    log = tmp_path / "results.jsonl.runs.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n" + '{"torn')  # ffs's summary never made it
    assert _bench(tmp_path, "--resume").exit_code == 0
    written = [json.loads(line)["policy"] for line in results.read_text().splitlines()]
    assert written == ["self_consistency", "self_consistency", "ffs", "ffs"]


def test_resume_needs_results(tmp_path):
    res = CliRunner().invoke(policies, ["--data", str(FIXTURE), "--backend", "scripted", "--resume",
                                        "--out", str(tmp_path / "b.md")])
    assert res.exit_code != 0 and "--resume needs --results" in res.output


def test_render_table_carries_the_paired_difference_to_sc():
    from parareason.runtime.result import Result

    def results(correct):
        return [Result(id=f"q{i}", prompt="p", answer="1", correct=c, policy="x", protocol="plain",
                       usage={"generated_tokens": 10}) for i, c in enumerate(correct)]

    sc = PolicyRun("self_consistency", {"n": 4}, 3, 4, 4, 40, 10.0, 0, results=results([True, True, True, False]))
    ffs = PolicyRun("ffs", {"n": 4}, 2, 4, 4, 40, 5.0, 0, results=results([True, False, True, False]))
    md = render_table([sc, ffs], sc)
    ffs_row = md.splitlines()[-1]
    assert "| -25.0 pts [" in ffs_row  # 2/4 vs 3/4 on the same questions
    lo, hi = (float(x) for x in ffs_row.split("| -25.0 pts [")[1].split("]")[0].split(","))
    assert -100.0 <= lo < -25.0 and hi == 0.0  # one question differs, always against ffs
    assert "| n/a | n/a |" in render_table([sc, PolicyRun("rpc", {"n": 4}, 0, 0, 0, 0, 1.0, 0)], sc)  # no Results
