"""Embedding judge on the shipped all-MiniLM-L6-v2 (real model, ~90 MB, loads in seconds)."""
from __future__ import annotations

import numpy as np
import pytest

from parareason.judge.base import ONLINE_PREFIX_STEP, equal_prefixes
from parareason.judge.calibration import LogisticCalibration
from parareason.judge.embedding import EmbeddingJudge, shared_encoder

# A GSM8K-train question (gsm8k-train-0) solved three ways, and unrelated math.
SOLUTION = ("Natalia sold 48 clips in April. In May she sold half as many, 48 / 2 = 24 clips. "
            "Altogether she sold 48 + 24 = 72 clips. The answer is 72.")
PARAPHRASE = ("In April Natalia sold 48 clips; in May she sold half of that, which is 24. "
              "So in total she sold 48 + 24 = 72 clips in April and May. #### 72")
UNRELATED = ("The square has an area of 49 square units, so its side is 7 and its perimeter "
             "is 4 * 7 = 28. The answer is 28.")
UNRELATED_2 = "Solve x^2 - 5x + 6 = 0: the roots are x = 2 and x = 3, so \\boxed{2, 3}."


@pytest.fixture(scope="module")
def judge():
    return EmbeddingJudge()


def test_paraphrase_scores_higher_than_unrelated_math(judge):
    para = judge.score(SOLUTION, PARAPHRASE)
    assert para > judge.score(SOLUTION, UNRELATED)
    assert para > judge.score(SOLUTION, UNRELATED_2)
    assert para > judge.score(PARAPHRASE, UNRELATED)
    cos = judge.cosine_many([(SOLUTION, PARAPHRASE), (SOLUTION, UNRELATED)])
    assert cos[0] > 0.7 > 0.5 > cos[1]


def test_embeddings_are_unit_length_and_deterministic():
    enc = shared_encoder()
    e1 = enc.encode([SOLUTION, UNRELATED])
    assert e1.shape == (2, 384)
    assert np.allclose(np.linalg.norm(e1, axis=1), 1.0, atol=1e-5)
    enc._cache.clear()
    assert np.allclose(enc.encode([SOLUTION, UNRELATED]), e1, atol=1e-5)


def test_batched_matches_single_and_is_symmetric(judge):
    pairs = [(SOLUTION, PARAPHRASE), (UNRELATED, SOLUTION), (UNRELATED_2, UNRELATED)]
    batched = judge.score_many(pairs)
    assert batched == pytest.approx([judge.score(a, b) for a, b in pairs], abs=1e-6)
    assert judge.score(PARAPHRASE, SOLUTION) == pytest.approx(batched[0], abs=1e-6)
    # online, each pair is first cut to equal-length prefixes
    assert judge.score_against(SOLUTION, [PARAPHRASE, UNRELATED]) == pytest.approx(
        judge.score_many([equal_prefixes(SOLUTION, PARAPHRASE, step=ONLINE_PREFIX_STEP),
                          equal_prefixes(SOLUTION, UNRELATED, step=ONLINE_PREFIX_STEP)]), abs=1e-6)


def test_long_traces_keep_their_start(judge):
    """Past 256 word pieces only the start is embedded (DeepPrune reads prefixes): two
    traces that share a long beginning and differ only at the end embed the same."""
    long_prefix = "We think about the problem carefully. " * 120
    a = long_prefix + "Finally 48 + 24 = 72."
    b = long_prefix + "Finally 13 * 7 = 91, so we are done here."
    assert judge.cosine_many([(a, b)])[0] > 0.99
    c = "Let us start. " * 40 + long_prefix  # a different beginning
    assert judge.cosine_many([(a, c)])[0] < judge.cosine_many([(a, b)])[0]


def test_online_cut_rounds_down_to_a_step_so_prefixes_repeat():
    """Online, newcomers of slightly different lengths cut a representative at the same
    step boundary (its embedding is then cached), and both sides stay equally long."""
    rep = "x" * 1000
    cuts = {equal_prefixes("y" * n, rep, step=64)[1] for n in range(448, 512)}
    assert len(cuts) == 1 and len(cuts.pop()) == 448
    a, b = equal_prefixes("y" * 130, "z" * 700, step=64)
    assert len(a) == len(b) == 128
    assert equal_prefixes("short", rep, step=64) == ("short", "xxxxx")  # under one step: exact


def test_score_against_compares_equal_length_prefixes(judge):
    """A partial trace is compared with the same-length start of a longer one."""
    partial = "First, 48 / 2 = 24 clips in May."
    longer = partial + " Then 48 + 24 = 72 in total. " + "Checking the sum again. " * 30
    [s] = judge.score_against(partial, [longer])
    assert s == pytest.approx(judge.score(partial, longer[:len(partial)]), abs=1e-6)
    assert s > judge.score(partial, longer)


def test_calibration_file_changes_scores(tmp_path, judge):
    LogisticCalibration(a=5.0, b=0.0, fitted_on=10).save(tmp_path / "cal.json")
    j2 = EmbeddingJudge.from_calibration_file(tmp_path / "cal.json")
    cos = judge.cosine_many([(SOLUTION, UNRELATED)])[0]
    assert j2.score(SOLUTION, UNRELATED) == pytest.approx(1 / (1 + np.exp(-5 * cos)), abs=1e-6)
