"""ReplayBackend against the Backend contract, on a small hand-written trace file."""
from __future__ import annotations

import json

import pytest

from parareason.backends.replay.tracefile import (
    TRACE_FORMAT, RecordedContext, RecordedQuestion, RecordedTrace, TraceFileError, load_trace_file,
)
from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.replay.backend import ReplayBackend

CTX = [1, 2, 3]
PIECES = {10: "The", 11: " answer", 12: " is", 13: " 4", 14: " 5", 15: ".", 99: "<eos>"}


def question(n_traces: int = 4) -> RecordedQuestion:
    traces = []
    for k in range(n_traces):
        toks = [10, 11, 12, 13 if k % 2 == 0 else 14, 15, 99]
        traces.append(RecordedTrace(token_ids=toks, logprobs=[-0.1 * (k + 1)] * len(toks),
                                    top_logprobs=[[(t, -0.1), (t + 1, -2.0)] for t in toks],
                                    finish_reason="eos", text="", answer="4" if k % 2 == 0 else "5"))
    return RecordedQuestion(id="q1", prompt="2+2?", reference="4", model="m", tokenizer="tok",
                            eos_token_ids=[99], sampling={"temperature": 1.0, "n": n_traces},
                            contexts=[RecordedContext(CTX, traces)],
                            chat_calls=[([{"role": "user", "content": "2+2?"}], True, CTX)],
                            pieces=PIECES)


def req(seq_id, ids=CTX, **params):
    return GenerationRequest(seq_id=seq_id, input_ids=tuple(ids), params=SamplingParams(**params))


def drain(backend):
    got: dict[str, dict] = {}
    steps = 0
    while backend.has_work():
        steps += 1
        for u in backend.step():
            s = got.setdefault(u.seq_id, {"tokens": [], "logprobs": [], "top": [], "reports": 0})
            assert not s.get("finished"), "a sequence is reported finished exactly once"
            s["tokens"] += u.token_ids
            s["logprobs"] += u.logprobs
            s["top"] += u.top_logprobs or []
            if u.prompt_tokens:
                s["prefill"] = (u.prompt_tokens, u.prefill_computed_tokens, u.cached_tokens)
            if u.finished:
                s.update(finished=True, reason=u.finish_reason, error=u.error, stop=u.matched_stop)
        assert steps < 1000
    return got


def test_seeded_order_is_deterministic_and_chunks_tokens():
    def run(seed):
        b = ReplayBackend([question()], seed=seed, chunk_size=2)
        for i in range(4):
            b.submit(req(f"s{i}"))
        first = b.step()
        assert all(len(u.token_ids) == 2 for u in first)
        got = drain(b)
        for u in first:
            got[u.seq_id]["tokens"][:0] = u.token_ids
            got[u.seq_id]["logprobs"][:0] = u.logprobs
            got[u.seq_id]["prefill"] = (u.prompt_tokens, u.prefill_computed_tokens, u.cached_tokens)
        return [tuple(got[f"s{i}"]["logprobs"][:1]) for i in range(4)], got

    order_a, got = run(seed=0)
    assert run(seed=0)[0] == order_a
    assert sorted(order_a) == sorted(set(order_a))  # every recorded trace handed out once
    assert any(run(seed=s)[0] != order_a for s in range(1, 6))
    assert all(g["reason"] == "eos" and len(g["tokens"]) == 6 for g in got.values())
    assert b_prefills(got) == [(3, 3, 0), (3, 0, 3), (3, 0, 3), (3, 0, 3)]


def b_prefills(got):
    return [got[k]["prefill"] for k in sorted(got)]


def test_more_samples_than_recorded_and_unknown_context_fail_with_reason():
    b = ReplayBackend([question(n_traces=2)], seed=1)
    for i in range(3):
        b.submit(req(f"s{i}"))
    b.submit(req("other", ids=[7, 7, 7]))
    got = drain(b)
    errors = {k: v["error"] for k, v in got.items() if v["reason"] == "error"}
    assert set(errors) == {"s2", "other"}
    assert "all 2 recorded traces" in errors["s2"]
    assert "never recorded" in errors["other"]
    assert b.stats["exhausted"] == 1 and b.stats["unknown_context"] == 1


def test_abort_reports_once_with_abort():
    b = ReplayBackend([question()], chunk_size=1)
    b.submit(req("s0"))
    b.step()
    b.abort("s0")
    b.abort("s0")  # second abort is a no-op
    b.abort("never-submitted")
    ups = b.step()
    assert [(u.seq_id, u.finished, u.finish_reason, u.token_ids) for u in ups] == [("s0", True, "abort", [])]
    assert not b.has_work() and b.step() == []


def test_max_new_tokens_cut_then_continuation_resumes_same_trace():
    b = ReplayBackend([question()], seed=3, chunk_size=16)
    b.submit(req("a", max_new_tokens=3))
    got = drain(b)
    assert got["a"]["reason"] == "length" and len(got["a"]["tokens"]) == 3
    b.submit(req("a2", ids=CTX + got["a"]["tokens"]))
    rest = drain(b)["a2"]
    assert rest["reason"] == "eos" and len(got["a"]["tokens"] + rest["tokens"]) == 6
    assert b.stats["continuations"] == 1 and b.stats["traces_handed_out"] == 1


def test_stop_token_stop_string_and_top_logprobs():
    b = ReplayBackend([question()], seed=0)
    b.submit(req("t", stop_token_ids=(12,), top_logprobs=1))
    b.submit(req("s", stop_strings=(" is",)))
    got = drain(b)
    assert got["t"]["tokens"] == [10, 11, 12] and got["t"]["reason"] == "stop_token"
    assert got["t"]["top"] == [[(10, -0.1)], [(11, -0.1)], [(12, -0.1)]]
    assert got["s"]["reason"] == "stop_string" and got["s"]["stop"] == " is"
    assert b.tokenizer.decode(got["s"]["tokens"]) == "The answer is"


def test_tokenizer_replays_recorded_calls_and_invents_unmatchable_ids():
    b = ReplayBackend([question()])
    tok = b.tokenizer
    assert tok.chat_ids([{"role": "user", "content": "2+2?"}]) == CTX
    unknown = tok.chat_ids([{"role": "user", "content": "something else"}])
    assert all(t >= 1 << 30 for t in unknown)
    ids = tok.encode("<marker>")
    assert tok.decode(ids) == "<marker>" and tok.eos_token_ids == frozenset({99})


def test_trace_file_round_trip_and_errors(tmp_path):
    p = tmp_path / "t.jsonl"
    q = question()
    p.write_text(json.dumps(q.to_dict()) + "\n" + '{"format": "' + TRACE_FORMAT + '", "id": "cut')
    loaded = load_trace_file(p)  # the partial last line of an interrupted record is skipped
    assert len(loaded) == 1 and json.dumps(loaded[0].to_dict()) == json.dumps(q.to_dict())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "y"}\n')
    with pytest.raises(TraceFileError, match=r"bad.jsonl:1: not a parareason-trace/1 line"):
        load_trace_file(bad)
