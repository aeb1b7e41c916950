"""Answer judge: math-verify equivalence of explicit final answers."""
from __future__ import annotations

from parareason.judge.answer import AnswerJudge, AnswerJudgeConfig, final_answer


def test_finished_traces_compare_by_value():
    j = AnswerJudge()
    assert j.score("so the total is \\boxed{0.5}", "Hence \\boxed{\\frac{1}{2}}") == 1.0
    assert j.score("#### 72", "The answer is 72.") == 1.0
    assert j.score("\\boxed{72}", "#### 71") == 0.0


def test_unfinished_traces_are_unknown_unless_guessing():
    partial = "First, 48 / 2 = 24 clips in May. Then"
    assert final_answer(partial) is None
    assert AnswerJudge().score(partial, "\\boxed{24}") == 0.5
    guess = AnswerJudge(AnswerJudgeConfig(guess_partial=True))
    assert guess.score(partial, "\\boxed{24}") == 0.7
    assert guess.score(partial, "\\boxed{25}") == 0.3


def test_batched_equals_single():
    j = AnswerJudge()
    pairs = [("\\boxed{3}", "\\boxed{3}"), ("\\boxed{3}", "#### 4"), ("x", "y")]
    assert j.score_many(pairs) == [j.score(a, b) for a, b in pairs]
