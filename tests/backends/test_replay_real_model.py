"""Record with the real small model (smollm2-135m), replay without it: the replayed
samples are exactly the recorded tokens and decode to the model's own text."""
from __future__ import annotations

import json

from click.testing import CliRunner

from parareason.cli.main import main
from parareason.backends.replay.tracefile import load_trace_file

ROWS = [{"id": "add", "question": "What is 2 + 3?", "answer": "5"},
        {"id": "mul", "question": "What is 4 times 6?", "answer": "24"}]


def test_record_real_model_then_replay_reproduces_tokens(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    traces = tmp_path / "t.jsonl"
    res = CliRunner().invoke(main, ["record", str(data), "--model", "smollm2-135m", "-n", "2",
                                    "--max-new-tokens", "12", "--out", str(traces), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    questions = load_trace_file(traces)
    assert [q.id for q in questions] == ["add", "mul"]
    for q in questions:
        assert q.n_traces == 2 and q.tokenizer and q.eos_token_ids
        for t in q.contexts[0].traces:
            assert 0 < len(t.token_ids) <= 12 and len(t.logprobs) == len(t.token_ids)
            assert all(lp <= 0 for lp in t.logprobs)
            assert "".join(q.pieces[i] for i in t.token_ids) == t.text  # byte-level BPE pieces decode exactly

    out = tmp_path / "rp"
    res = CliRunner().invoke(main, ["replay", str(traces), "--policy", "sc", "--out-dir", str(out), "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in map(json.loads, (out / "results-sc.jsonl").read_text().splitlines())}
    for q in questions:
        recorded = sorted(((len(t.token_ids), t.answer) for t in q.contexts[0].traces), key=str)
        replayed = sorted(((t["tokens"], t["answer"]) for t in rows[q.id]["threads"]), key=str)
        assert replayed == recorded
        assert rows[q.id]["usage"]["generated_tokens"] == sum(n for n, _ in recorded)
