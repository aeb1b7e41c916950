"""Countdown generator: the reference's distribution and draw order, and the prompt formats."""
import json

import pytest

from parareason.grading.countdown import CountdownProblem, check_expression, find_problem, parse_reference
from parareason.io.countdown import combine_nums, generate, main, prompt_for, rows, solve

# What the reference gives in one process: APR src/data/generate_problems.py `generate_problem`
# (4 numbers, max_target 100) five times after random.seed(42), run at APR @ 5577928.
REFERENCE_SEED_42 = [
    (13, [95, 36, 32, 29], ['32-29=3', '36*3=108', '108-95=13']),
    (23, [14, 12, 49, 13], ['14-12=2', '13*2=26', '49-26=23']),
    (54, [92, 40, 52, 86], ['86-40=46', '92/46=2', '52+2=54']),
    (66, [28, 52, 8, 22], ['28+52=80', '22-8=14', '80-14=66']),
    (10, [25, 38, 28, 8], ['28-25=3', '38-8=30', '30/3=10']),
]


def test_seeded_generator_reproduces_the_reference_draws():
    got = [(p.target, list(p.nums), sol) for p, sol in generate(5, 42)]
    assert got == REFERENCE_SEED_42
    assert generate(5, 7) == generate(5, 7) and generate(5, 7) != generate(5, 8)


def test_reference_search_and_operations():
    # CountDown.search / combine_nums of the reference, on the same inputs
    assert solve(24, [4, 9, 3, 2]) == ['4*9=36', '36/3=12', '2*12=24']
    assert solve(62, [5, 50, 79, 27]) == ['50/5=10', '79-27=52', '10+52=62']
    assert solve(7, [2, 2]) is None
    assert combine_nums(12, 3) == [(15, "12+3=15"), (36, "12*3=36"), (9, "12-3=9"), (4, "12/3=4")]
    assert combine_nums(3, 7) == [(10, "3+7=10"), (21, "3*7=21"), (4, "7-3=4")]


def test_distribution_bounds_and_distinct_problems():
    probs = generate(150, 3)
    assert len({(tuple(sorted(p.nums)), p.target) for p, _ in probs}) == 150
    assert all(10 <= p.target <= 100 and len(p.nums) == 4 and all(1 <= x <= 99 for x in p.nums) for p, _ in probs)
    assert min(p.target for p, _ in probs) < 25 and max(p.target for p, _ in probs) > 85


def test_rows_and_prompt_formats(tmp_path):
    [r] = rows(1, 42, "apr")
    assert r["prompt"] == "Moving to Node #0\nCurrent State: 13:[95, 36, 32, 29], Operations: []"
    assert r["answer"] == "countdown:13:[95, 36, 32, 29]" and r["task"] == "countdown"
    assert parse_reference(r["answer"]) == CountdownProblem(13, (95, 36, 32, 29))
    p = CountdownProblem(13, (95, 36, 32, 29))
    for fmt in ("apr", "instruct"):
        assert find_problem(prompt_for(p, fmt)) == p
    with pytest.raises(ValueError):
        prompt_for(p, "latex")
    out = tmp_path / "cd.jsonl"
    main(["--n", "3", "--seed", "42", "--format", "instruct", "--out", str(out)])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["target"] for x in lines] == [13, 23, 54]
    assert "\\boxed{}" in lines[0]["prompt"]
    # the stored solution, written as an expression, passes the grader
    assert lines[0]["solution"] == ['32-29=3', '36*3=108', '108-95=13']
    assert check_expression(p, "36 * (32 - 29) - 95") is True


def test_cli_rejects_bad_sizes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--n", "0", "--out", str(tmp_path / "x.jsonl")])
    assert "need n >= 1" in capsys.readouterr().err
