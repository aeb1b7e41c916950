"""`parareason record` then `parareason replay`: resumable trace files, deterministic
replays under a seed, and replay limits reported instead of invented samples."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from parareason import api
from parareason.cli.main import main
from parareason.backends.replay.tracefile import load_trace_file
from parareason.backends.scripted import ScriptContext, ScriptedBackend

QUESTIONS = [{"id": f"q{k}", "question": f"Problem {k}: add {k} and {k}.", "answer": str(2 * k)} for k in range(4)]


def varied_script(ctx: ScriptContext) -> str:
    """Samples differ by their seed: different lengths and answers (right 1 time in 3)."""
    k = int(ctx.text.split("Problem ", 1)[1].split(":", 1)[0])
    s = ctx.params.seed or 0
    answer = 2 * k if s % 3 == 0 else 2 * k + s % 3
    return "Hmm. " * (s % 5) + f"The answer is \\boxed{{{answer}}}."


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(api, "load_backend",
                        lambda *a, **k: ScriptedBackend(varied_script, tokens_per_step=5))


@pytest.fixture
def dataset(tmp_path):
    p = tmp_path / "data.jsonl"
    p.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return p


def invoke(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res


def record(dataset, out, *extra):
    return invoke("record", dataset, "--out", out, "-n", 6, "--top-logprobs", 2, *extra)


def results(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["id"]: (r["answer"], r["correct"], [(t["status"], t["tokens"], t["answer"]) for t in r["threads"]],
                      r["usage"]["generated_tokens"]) for r in rows}


def test_record_writes_self_contained_traces_and_resumes(scripted, dataset, tmp_path):
    out = tmp_path / "traces.jsonl"
    res = record(dataset, out, "--limit", 2)
    assert res.exit_code == 0, res.output
    qs = load_trace_file(out)
    assert [q.id for q in qs] == ["q0", "q1"]
    q = qs[0]
    assert q.n_traces == 6 and len(q.contexts) == 1 and q.reference == "0"
    tr = q.contexts[0].traces[0]
    assert len(tr.logprobs) == len(tr.token_ids) and len(tr.top_logprobs) == len(tr.token_ids)
    assert all(len(alts) == 2 for alts in tr.top_logprobs)
    assert tr.finish_reason == "eos" and tr.answer is not None and tr.text.endswith(f"{{{tr.answer}}}.")
    assert q.chat_calls and q.chat_calls[-1][2] == q.contexts[0].input_ids  # replay can rebuild the context
    assert "".join(q.pieces[t] for t in tr.token_ids) == tr.text
    # an interrupted record leaves a partial line: resume repairs it and records the rest
    with open(out, "ab") as f:
        f.write(b'{"format": "parareason-trace/1", "id": "q2", "con')
    res = record(dataset, out, "--resume")
    assert res.exit_code == 0, res.output
    assert "2 of 4 questions already recorded" in res.output
    assert [q.id for q in load_trace_file(out)] == ["q0", "q1", "q2", "q3"]
    res = record(dataset, out, "--resume", "--temperature", 0.2)
    assert res.exit_code == 1 and "temperature 0.7 -> 0.2" in res.output


def test_questions_recorded_together_match_questions_recorded_one_by_one(scripted, dataset, tmp_path):
    one, four = tmp_path / "one.jsonl", tmp_path / "four.jsonl"
    assert record(dataset, one, "--questions-at-once", 1).exit_code == 0
    assert record(dataset, four, "--questions-at-once", 4).exit_code == 0
    a, b = load_trace_file(one), load_trace_file(four)
    # loaded in dataset order whatever order they finished in
    assert [q.id for q in b] == [q.id for q in a] == ["q0", "q1", "q2", "q3"]
    assert [q.row for q in b] == [0, 1, 2, 3]
    for qa, qb in zip(a, b):
        assert [t.token_ids for c in qb.contexts for t in c.traces] == \
            [t.token_ids for c in qa.contexts for t in c.traces]
        # each line holds its own question's samples and chat call, nobody else's
        assert len(qb.contexts) == 1 and qb.n_traces == 6
        assert [m[-1]["content"] for m, _, _ in qb.chat_calls] == [qb.prompt]
        assert qb.chat_calls == qa.chat_calls


def test_record_rows_keep_dataset_rows_and_seeds(scripted, dataset, tmp_path):
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    assert record(dataset, whole).exit_code == 0
    res = record(dataset, part, "--rows", "1:3")
    assert res.exit_code == 0, res.output
    a, b = load_trace_file(whole), load_trace_file(part)
    assert [(q.id, q.row) for q in b] == [("q1", 1), ("q2", 2)]
    # the same seeds as in the whole file, so the slice pairs with it question by question
    assert [[t.token_ids for t in q.contexts[0].traces] for q in b] == \
        [[t.token_ids for t in q.contexts[0].traces] for q in a[1:3]]
    res = record(dataset, tmp_path / "none.jsonl", "--rows", "9:12")
    assert res.exit_code == 2 and "no question at rows 9:12" in res.output


def test_traces_compare_pairs_recordings_of_the_same_rows(scripted, dataset, tmp_path):
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    assert record(dataset, whole).exit_code == 0
    assert record(dataset, part, "--rows", "1:3").exit_code == 0
    res = invoke("traces", "compare", f"a={whole}", f"b={part}", "--k", 4)
    assert res.exit_code == 0, res.output
    # the same rows and seeds: the same votes, a difference of 0 on the 2 common questions
    assert "SC@4 on the 2 questions" in res.output and "| b |" in res.output and "+0.000" in res.output
    assert "| 1.00x |" in res.output
    res = invoke("traces", "compare", f"a={whole}", "--base", "z")
    assert res.exit_code == 2 and "'z' is not one of the labels a" in res.output
    res = invoke("traces", "compare", str(whole))
    assert res.exit_code == 2 and "expected LABEL=PATH" in res.output


def test_replay_and_judge_select_dataset_rows(scripted, dataset, tmp_path):
    traces = tmp_path / "traces.jsonl"
    assert record(dataset, traces, "--questions-at-once", 4).exit_code == 0
    res = invoke("replay", traces, "--rows", "1:3", "--policies", "sc", "--out-dir", tmp_path / "r", "-q")
    assert res.exit_code == 0, res.output
    got = [json.loads(line)["id"] for line in (tmp_path / "r" / "results-sc.jsonl").read_text().splitlines()]
    assert sorted(got) == ["q1", "q2"]
    res = invoke("replay", traces, "--rows", "7:", "--policies", "sc", "--out-dir", tmp_path / "r2")
    assert res.exit_code == 2 and "no recorded question at rows 7:" in res.output
    res = invoke("replay", traces, "--rows", "x", "--policies", "sc", "--out-dir", tmp_path / "r3")
    assert res.exit_code == 2 and "START:END" in res.output
    res = invoke("judge", "eval", traces, "--judge", "answer", "--all-questions", "--rows", ":2")
    assert res.exit_code == 0, res.output
    assert "all questions: 2" in res.output


def test_replay_is_deterministic_under_a_seed_and_needs_no_model(scripted, dataset, tmp_path, monkeypatch):
    traces = tmp_path / "traces.jsonl"
    assert record(dataset, traces).exit_code == 0

    def no_model(*a, **k):
        raise AssertionError("replay must not load a model")

    monkeypatch.setattr(api, "load_backend", no_model)

    def replay(seed, out, *extra):
        res = invoke("replay", traces, "--policies", "sc,ffs", "-n", 3, "--seed", seed, "--out-dir", out,
                     "--chunk-size", 4, "-q", *extra)
        assert res.exit_code == 0, res.output
        return results(out / "results-sc.jsonl"), results(out / "results-ffs.jsonl")

    first = replay(1, tmp_path / "a")
    assert replay(1, tmp_path / "b") == first
    others = [replay(s, tmp_path / f"s{s}") for s in range(2, 5)]
    assert any(o != first for o in others), "the seed decides which recorded traces a policy sees"
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert [p["policy"] for p in summary["policies"]] == ["sc", "ffs"]
    assert summary["policies"][0]["tokens_vs_baseline"] == 1.0
    assert (tmp_path / "a" / "accuracy_vs_tokens.png").stat().st_size > 1000
    assert "| sc |" in (tmp_path / "a" / "summary.md").read_text()
    ffs = summary["policies"][1]
    assert ffs["paired_prompts"] == 4 and ffs["accuracy_vs_baseline_ci"] is not None
    lo, hi = ffs["accuracy_vs_baseline_ci"]
    assert lo <= ffs["accuracy_vs_baseline"] <= hi
    assert all(p["accuracy_ci"] is not None and p["wall_vs_baseline"] is not None for p in summary["policies"])
    # the SC@k curve from sc's 3 replayed samples, ending where sc itself is
    points = summary["sc_at_k"]["points"]
    assert [p["k"] for p in points] == [1, 2, 3]
    assert points[-1]["tokens_per_prompt"] == pytest.approx(summary["policies"][0]["tokens_per_prompt"], abs=0.05)
    # sc uses all 3 samples it asked for, every one a recorded trace
    for answer, correct, threads, tokens in first[0].values():
        assert len(threads) == 3 and all(status == "finished" for status, _, _ in threads)


def test_replay_reports_what_was_never_recorded(scripted, dataset, tmp_path):
    traces = tmp_path / "traces.jsonl"
    assert record(dataset, traces, "--limit", 1).exit_code == 0
    res = invoke("replay", traces, "--policy", "sc", "-n", 8, "--out-dir", tmp_path / "o", "-q")
    assert res.exit_code == 0, res.output
    assert "2 sample(s) beyond the recorded ones" in res.output
    [row] = [json.loads(x) for x in (tmp_path / "o" / "results-sc.jsonl").read_text().splitlines()]
    failed = [t for t in row["threads"] if t["status"] == "failed"]
    assert len(failed) == 2 and all("recorded traces of this context are used" in t["reason"] for t in failed)
    res = invoke("replay", tmp_path / "missing.jsonl", "--out-dir", tmp_path / "o2")
    assert res.exit_code == 2 and "no such trace file" in res.output


def test_replay_help_documents_its_limits():
    out = invoke("replay", "--help").output
    assert "cannot create what was never recorded" in out and "temperature" in out
