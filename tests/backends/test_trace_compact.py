"""Compact trace files (compact.py) replay like the originals; stats state the cut share."""
from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from parareason.backends.replay.compact import CompactOptions, compact_trace_file
from parareason.backends.replay.trace_stats import trace_stats
from parareason.backends.replay.tracefile import RecordedTrace, TraceFileError, load_trace_file
from parareason.cli.main import main
from tests.backends.test_replay_backend import question


def _write(path, questions):
    path.write_text("".join(json.dumps(q.to_dict()) + "\n" for q in questions))


def _with_precise_logprobs():
    q = question()
    for k, t in enumerate(q.contexts[0].traces):
        t.logprobs = [-0.123456789 * (k + 1)] * len(t.token_ids)
        t.top_logprobs = [[(tid, -0.0049), (tid + 1, -2.3456)] for tid in t.token_ids]
    q.row = 7
    return q


def test_compact_rounds_drops_ids_and_replays_the_same_tokens(tmp_path):
    src, dst = tmp_path / "t.jsonl", tmp_path / "t.jsonl.xz"
    _write(src, [_with_precise_logprobs()])
    assert compact_trace_file(src, dst) == 1
    [orig], [small] = load_trace_file(src), load_trace_file(dst)
    assert small.row == 7 and small.reference == orig.reference and small.pieces == orig.pieces
    for a, b in zip(orig.contexts[0].traces, small.contexts[0].traces):
        assert b.token_ids == a.token_ids and b.answer == a.answer and b.finish_reason == a.finish_reason
        assert all(abs(x - y) <= 5e-4 for x, y in zip(a.logprobs, b.logprobs))
        assert b.top_logprobs[0] == [(-1, -0.0), (-1, -2.35)]  # values kept to 2 decimals, ids gone


def test_compact_can_keep_ids_and_needs_an_xz_name(tmp_path):
    src = tmp_path / "t.jsonl"
    _write(src, [_with_precise_logprobs()])
    compact_trace_file(src, tmp_path / "k.xz", CompactOptions(keep_top_ids=True))
    [q] = load_trace_file(tmp_path / "k.xz")
    assert q.contexts[0].traces[0].top_logprobs[0] == [(10, -0.0), (11, -2.35)]
    with pytest.raises(ValueError, match="xz"):
        compact_trace_file(src, tmp_path / "t.json")


def test_gzip_files_read_and_a_damaged_archive_is_a_clear_error(tmp_path):
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress((json.dumps(question().to_dict()) + "\n").encode()))
    assert load_trace_file(gz)[0].id == "q1"
    bad = tmp_path / "bad.jsonl.xz"
    bad.write_bytes(b"not xz at all")
    with pytest.raises(TraceFileError, match="cannot decompress"):
        load_trace_file(bad)


def test_stats_count_the_traces_cut_at_the_cap(tmp_path):
    q = question()
    q.sampling["max_new_tokens"] = 6
    q.contexts[0].traces.append(RecordedTrace(token_ids=[10] * 6, logprobs=[-1.0] * 6, finish_reason="length"))
    s = trace_stats([q])
    assert (s.traces, s.cut, s.cut_answered, s.answered, s.top_logprobs) == (5, 1, 0, 4, 2)
    assert "1 traces (20.0%)" in "\n".join(s.lines())
    src = tmp_path / "t.jsonl"
    _write(src, [q])
    out = CliRunner().invoke(main, ["traces", "stats", str(src)])
    assert out.exit_code == 0 and "cut at max_new_tokens=6: 1 traces (20.0%)" in out.output
    out = CliRunner().invoke(main, ["traces", "compact", str(src), str(tmp_path / "c.jsonl.xz")])
    assert out.exit_code == 0 and "1 questions ->" in out.output, out.output
