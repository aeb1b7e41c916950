"""Countdown grader: search traces checked like APR's check_solution, expressions parsed."""
import json
from pathlib import Path

import pytest

from parareason.grading import is_correct
from parareason.grading.countdown import CountdownProblem, check_expression, check_trace, grade, search_result

TD = json.loads((Path(__file__).parents[1] / "fixtures" / "apr_trace_dict.json").read_text())
P = CountdownProblem(10, (1, 2, 3, 4))
REF = "countdown:10:[1, 2, 3, 4]"


def test_reference_traces_are_graded_like_check_solution():
    final = TD["main_calls"][-1]
    path = search_result(final)
    assert path.startswith("Moving to Node #0\n") and path.endswith("10,10 equal: Goal Reached")
    assert check_trace(P, path) is True
    # the whole trace replays its dead ends too, so only its final path is graded
    assert check_trace(P, final) is False and grade(final, REF) is True
    solved_child = TD["sub_calls"][0][1]["main_calls"][0]
    assert check_trace(CountdownProblem(10, (5, 5)), search_result(solved_child)) is True
    assert check_trace(P, TD["main_calls"][0]) is False  # no goal reached
    assert is_correct(final, REF) is True


@pytest.mark.parametrize("bad", [
    "Exploring Operation: 1+4=6, Resulting Numbers: [2, 3, 6]\n10,10 equal: Goal Reached",  # wrong sum
    "Exploring Operation: 7+4=11, Resulting Numbers: [1, 2, 3, 11]\n10,10 equal: Goal Reached",  # 7 not given
    "Exploring Operation: 1+4=5, Resulting Numbers: [2, 5]\n10,10 equal: Goal Reached",  # numbers do not match
    "Exploring Operation: 3/2=1, Resulting Numbers: [1, 4, 1]\n10,10 equal: Goal Reached",  # inexact division
    "Goal Reached",  # goal claimed with four numbers left
])
def test_invalid_traces(bad):
    assert check_trace(P, bad) is False


def test_expressions():
    assert check_expression(P, "(1 + 2 + 3) + 4") is True
    assert check_expression(P, "4 * 3 - 2 * 1 = 10") is True
    assert check_expression(P, "(4 × 3) − 2 ÷ 1".replace("−", "-")) is True
    assert check_expression(P, "4 * 3 - 2") is False  # 1 unused
    assert check_expression(P, "4 * 3 - 2 + 1 - 1") is False  # 1 used twice
    assert check_expression(P, "(1 + 4) / 2 * 3 + 2.5") is False  # inexact division, decimals
    assert check_expression(P, "__import__('os').system('true')") is False  # parsed, never evaluated
    assert check_expression(P, "(1 + 2 + 3 + 4") is False
    assert check_expression(P, "-1 + 2 + 3 + 4 + 2") is False


def test_grade_and_is_correct_hook():
    assert grade(None, REF) is False and grade("", REF) is False
    assert is_correct("1+2+3+4", REF) is True and is_correct("10", REF) is False
    with pytest.raises(ValueError):
        grade("1", "42")
    assert is_correct("42", "42") is True  # other references still go to math-verify
