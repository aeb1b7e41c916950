"""Labelled pairs from recorded traces: labels, prefixes, split by question, formats."""
from __future__ import annotations

import json

from parareason.backends.replay.tracefile import TRACE_FORMAT
from parareason.judge.pairs import build_pairs, load_traces, parse_prefixes, split_by_question


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_labels_follow_answer_equivalence_and_unanswered_traces_are_skipped(tmp_path):
    f = _write(tmp_path / "t.jsonl", [{"id": "q", "question": "?", "answer": "0.5", "traces": [
        {"text": "so \\boxed{\\frac{1}{2}}", "answer": None},  # answer extracted from text
        {"text": "...", "answer": "0.5"},
        {"text": "I give up", "answer": None},  # no answer: no pairs
        {"text": "...", "answer": "2"}]}])
    [q] = load_traces(f)
    assert [t.answer for t in q.traces] == ["\\frac{1}{2}", "0.5", None, "2"]
    pairs = build_pairs([q], prefix_chars=(0, 3))
    assert len(pairs) == 3 * 2
    assert sorted(p.label for p in pairs if p.prefix_chars == 0) == [0, 0, 1]
    assert all(len(p.a) <= 3 and len(p.b) <= 3 for p in pairs if p.prefix_chars == 3)


def test_split_is_by_question_and_deterministic(tmp_path):
    rows = [{"id": f"q{i}", "question": "", "answer": "1",
             "traces": [{"text": "a", "answer": "1"}, {"text": "b", "answer": "2"}]} for i in range(10)]
    qs = load_traces(_write(tmp_path / "t.jsonl", rows))
    train, held = split_by_question(qs, 0.3, seed=1)
    assert len(held) == 3 and not {q.id for q in train} & {q.id for q in held}
    assert [q.id for q in split_by_question(qs, 0.3, seed=1)[1]] == [q.id for q in held]


def test_reads_the_record_format(tmp_path):
    trace = {"token_ids": [1, 2], "logprobs": [-0.1, -0.2], "finish_reason": "eos",
             "text": "so \\boxed{7}", "answer": "7"}
    line = {"format": TRACE_FORMAT, "id": "r1", "prompt": "What?", "reference": "7", "model": "m",
            "tokenizer": "t", "eos_token_ids": [0], "sampling": {},
            "contexts": [{"input_ids": [5], "traces": [trace, {**trace, "text": "\\boxed{8}", "answer": "8"}]},
                         {"input_ids": [6], "traces": [trace]}]}
    [q] = load_traces(_write(tmp_path / "r.jsonl", [line]))
    assert (q.id, q.question, q.reference) == ("r1", "What?", "7")
    assert [t.answer for t in q.traces] == ["7", "8", "7"]
    assert sorted(p.label for p in build_pairs([q])) == [0, 0, 1]
    # the committed recordings are xz-compressed: `judge train|eval` read them as they are
    import lzma

    packed = tmp_path / "r.jsonl.xz"
    packed.write_bytes(lzma.compress((tmp_path / "r.jsonl").read_bytes()))
    [again] = load_traces(packed)
    assert again == q


def test_record_format_in_dataset_order_and_truncated_traces_need_a_stated_answer(tmp_path):
    done = {"token_ids": [1], "logprobs": [-0.1], "finish_reason": "eos", "text": "so \\boxed{7}", "answer": "7"}
    cut = {**done, "finish_reason": "length", "text": "first 3 + 4 = 7 then", "answer": "7"}
    cut_stated = {**cut, "text": "\\boxed{7} and more"}

    def line(qid, row):
        return {"format": TRACE_FORMAT, "id": qid, "prompt": "What?", "reference": "7", "model": "m",
                "tokenizer": "t", "eos_token_ids": [0], "sampling": {}, "row": row,
                "contexts": [{"input_ids": [5], "traces": [done, cut, cut_stated]}]}

    qs = load_traces(_write(tmp_path / "r.jsonl", [line("b", 1), line("c", 2), line("a", 0)]))
    assert [(q.id, q.row) for q in qs] == [("a", 0), ("b", 1), ("c", 2)]  # written as they finished
    assert [t.answer for t in qs[0].traces] == ["7", None, "7"]  # a cut trace's last number is no answer


def test_parse_prefixes():
    assert parse_prefixes("400, 800,full") == (400, 800, 0)
    assert parse_prefixes("") == (0,)


def test_partial_last_line_is_skipped_but_a_malformed_line_is_an_error(tmp_path):
    import pytest

    good = json.dumps({"id": "q", "question": "?", "answer": "1", "traces": [{"text": "\\boxed{1}", "answer": "1"}]})
    f = tmp_path / "t.jsonl"
    f.write_text(good + "\n" + '{"id": "half')  # interrupted recording
    assert [q.id for q in load_traces(f)] == ["q"]
    f.write_text('{"broken\n' + good + "\n")
    with pytest.raises(ValueError, match=r"t.jsonl:1: invalid JSON"):
        load_traces(f)
