"""bench weights: drift is zero for full against itself and tiny for float16; SC@k per
format is paired on the questions every trace file has."""
from __future__ import annotations

import json

import pytest
import torch

from parareason.bench.sc_compare import QuestionVote, sc_comparison, sc_votes
from parareason.bench.weights_bench import WeightsBenchConfig, measure_drift
from tests.backends.test_replay_backend import question
from tests.support.engine_util import TEST_MODEL


@pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines, reason="float16 weights need fbgemm")
def test_drift_is_zero_for_full_and_tiny_for_float16():
    drifts = {d.fmt: d for d in measure_drift(WeightsBenchConfig(model=TEST_MODEL, formats=("full", "float16"),
                                                                 answer_tokens=12))}
    assert drifts["full"].kl == 0.0 and drifts["full"].argmax_agreement == 1.0
    assert 0.0 <= drifts["float16"].kl < 1e-3 and drifts["float16"].abs_logprob_diff < 0.01


def _file(tmp_path, name, answers_by_row):
    lines = []
    for row, answers in answers_by_row.items():
        q = question(len(answers))
        q.id, q.row = f"q{row}", row
        for t, a in zip(q.contexts[0].traces, answers):
            t.answer = a
        lines.append(json.dumps(q.to_dict()))
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_sc_credits_vote_over_the_first_k_traces(tmp_path):
    p = _file(tmp_path, "a.jsonl", {0: ["4", "4", "5", "5", "5"], 1: ["5", "4", None, None, None]})
    assert {r: v.credit for r, v in sc_votes(p, 2).items()} == {0: 1.0, 1: 0.5}  # row 1: a 1-1 tie scores half
    assert {r: v.credit for r, v in sc_votes(p, 5).items()} == {0: 0.0, 1: 0.5}
    tokens = sum(len(t.token_ids) for t in question(5).contexts[0].traces[:2])
    assert sc_votes(p, 2)[0] == QuestionVote(1.0, tokens)


def test_sc_table_pairs_questions_common_to_all_files(tmp_path):
    full = _file(tmp_path, "full.jsonl", {0: ["4"] * 3, 1: ["4"] * 3, 2: ["5"] * 3})
    int8 = _file(tmp_path, "int8.jsonl", {0: ["4"] * 3, 1: ["5"] * 3})  # row 2 missing: not compared
    md = sc_comparison({"full": full, "int8": int8}, 3, base="full", label="weights")
    assert "on the 2 questions" in md and "| weights |" in md
    assert "| full | 1.000 |" in md and "| int8 | 0.500 |" in md and "-0.500" in md and "| 1.00x |" in md
    assert "needs a `full` trace file" in sc_comparison({"int8": int8}, 3, base="full")
