"""`parareason eval`: policies over a dataset with one shared backend; summary files."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from parareason import api
from parareason.cli.main import main
from parareason.backends.scripted import ScriptedBackend

ROWS = [{"id": f"r{k}", "question": f"Item {k}: what is {k} times 2?", "answer": str(2 * k)} for k in range(6)]


def scripted_factory(loads):
    def load(*a, **k):
        loads.append(a)
        # right for even k; a long detour for odd k (so FFS can save tokens when n > k)
        table = {f"Item {k}:": ("" if k % 2 == 0 else "Let me double check this. " * 3) +
                 f"So \\boxed{{{2 * k if k % 2 == 0 else 2 * k + 1}}}." for k in range(6)}
        return ScriptedBackend.from_table(table, tokens_per_step=6)
    return load


def test_eval_two_policies_writes_results_and_summaries(tmp_path, monkeypatch):
    loads: list = []
    monkeypatch.setattr(api, "load_backend", scripted_factory(loads))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "ev"
    args = ["eval", str(data), "--policies", "sc,ffs", "--policy-arg", "ffs.k=1", "-n", "3", "--limit", "4",
            "--out-dir", str(out), "-q"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(loads) == 1, "one backend shared by every policy"
    for p in ("sc", "ffs"):
        rows = [json.loads(x) for x in (out / f"results-{p}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == ["r0", "r1", "r2", "r3"]
        assert [r["correct"] for r in sorted(rows, key=lambda r: r["id"])] == [True, False, True, False]
    summary = json.loads((out / "summary.json").read_text())
    sc, ffs = summary["policies"]
    assert sc["accuracy"] == ffs["accuracy"] == 0.5 and sc["graded"] == 4
    assert sc["tokens_vs_baseline"] == 1.0
    assert ffs["generated_tokens"] <= sc["generated_tokens"]
    assert summary["meta"]["dataset"] == str(data) and summary["meta"]["n"] == 3
    md = (out / "summary.md").read_text()
    assert "| sc | 50.0% | 2/4 |" in md and "| ffs | 50.0% |" in md
    # statistics of every comparison: accuracy CI, paired difference to the baseline, ratios
    assert sc["accuracy_ci"][0] <= 0.5 <= sc["accuracy_ci"][1] and sc["paired_prompts"] == 4
    assert ffs["accuracy_vs_baseline"] == 0.0 and ffs["accuracy_vs_baseline_ci"] == [0.0, 0.0]  # same answers
    assert sc["wall_vs_baseline"] == 1.0 and ffs["wall_vs_baseline"] > 0
    assert summary["statistics"]["confidence"] == 0.95 and summary["statistics"]["seed"] == 0
    assert "| accuracy 95% CI | vs baseline: accuracy [95% paired CI] | wall vs baseline |" in md
    assert "| baseline | 1.00x |" in md and "| +0.0 pts [+0.0, +0.0] |" in md
    # SC@k from sc's own 3 samples: every sample of a question answers alike, so 50% at each k
    curve = summary["sc_at_k"]
    assert curve["policy"] == "sc" and [p["k"] for p in curve["points"]] == [1, 2, 3]
    assert [p["accuracy"] for p in curve["points"]] == [0.5, 0.5, 0.5]
    per_sample = curve["points"][0]["tokens_per_prompt"]
    assert curve["points"][2]["tokens_per_prompt"] == pytest.approx(3 * per_sample)
    assert curve["points"][2]["tokens_per_prompt"] == pytest.approx(sc["tokens_per_prompt"])
    assert "SC@k from sc's own samples" in md and "| 3 | 50.0% |" in md
    assert "acc 95% CI" in res.output and "SC@k from sc's samples: k=1 50.0%" in res.output
    assert (out / "accuracy_vs_tokens.png").read_bytes()[:4] == b"\x89PNG"
    # resume with everything done: no model load, same summary
    res = CliRunner().invoke(main, args + ["--resume"], catch_exceptions=False)
    assert res.exit_code == 0 and "4 of 4 already done" in res.output and len(loads) == 1


def test_eval_rejects_rows_without_answers_and_bad_policy_args(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "x", "answer": "1"}) + "\n" + json.dumps({"question": "y"}) + "\n")
    res = CliRunner().invoke(main, ["eval", str(data), "--out-dir", str(tmp_path / "o")])
    assert res.exit_code == 2 and f"{data}:2: no 'answer'" in res.output
    data.write_text(json.dumps({"question": "x", "answer": "1"}) + "\n")
    res = CliRunner().invoke(main, ["eval", str(data), "--out-dir", str(tmp_path / "o"), "--policies", "sc,ffs",
                                    "--policy-arg", "rpc.keep_min=2"])
    assert res.exit_code == 2 and "not in --policies" in res.output
    res = CliRunner().invoke(main, ["eval", str(data), "--out-dir", str(tmp_path / "o"), "--policies", "sc,sc"])
    assert res.exit_code == 2 and "distinct" in res.output


def test_eval_caps_n_like_run_and_records_it(tmp_path, monkeypatch):
    # before: eval recorded n=100 while sc could run only the per-request cap of 64
    monkeypatch.setattr(api, "load_backend", scripted_factory([]))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]))
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["eval", str(data), "-n", "100", "--max-new-tokens", "8", "--out-dir", str(out),
                                    "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.output.count("above the per-request cap of 64") == 1
    configs = [c for f in out.glob("*.config.json") for c in json.loads(f.read_text()).values()]
    assert configs and all((c["n"], c["n_asked"]) == (64, 100) for c in configs)
    rows = [json.loads(x) for x in (out / "results-sc.jsonl").read_text().splitlines()]
    ran = [sum(1 for t in r["threads"] if t["parent"] is None) for r in rows]  # root threads = samples
    assert ran == [64, 64], ran
