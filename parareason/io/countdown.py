"""Countdown problems (APR's benchmark task): a seeded generator and the prompt formats.

The distribution is the reference's: github.com/Parallel-Reasoning/APR
@ 557792831087b701e0d41912eaf785c8d73e6f69, `src/data/generate_problems.py` with the
settings of `src/data/scripts/create_prob.sh` (4 starting numbers, targets 10..100):
a target drawn uniformly from 10..max_target, then `start_size` numbers drawn uniformly
from 1..max_target-1 until a solution exists (`CountDown.generate` in
`src/data/countdown.py`), where an operation combines two numbers into their sum,
product, difference (larger minus smaller) or exact quotient (`combine_nums` in
`src/countdown_utils.py`). Draws come from one `random.Random(seed)`, so a seed gives
the same file everywhere, in the reference's draw order (a seed gives the problems a
single-process run of `generate_problem` after `random.seed(seed)` gives; the reference
script spreads draws over worker processes). Problems repeated within one file are drawn
again (the reference intends this; its per-worker set copies never fill).

Prompt formats: `apr` is the root prefix the APR checkpoints decode from
(`Moving to Node #0\\nCurrent State: T:[...], Operations: []`, eval_apr.py `get_prefix`);
`instruct` asks an instruct model for a boxed equation. Both are recognised by
`grading.countdown.find_problem`, so either file drives either APR dialect. Rows carry
`answer: "countdown:T:[...]"`, graded by `grading.countdown`.

    python -m parareason.io.countdown --n 100 --seed 42 --format apr --out countdown.jsonl
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path
from typing import Any

from parareason.grading.countdown import CountdownProblem, reference_string
from parareason.runtime.protocols.apr_format import root_prefix

FORMATS = ("apr", "instruct")


def combine_nums(a: int, b: int) -> list[tuple[int, str]]:
    """`combine_nums` of the reference: the results of one operation on a and b."""
    out = [(a + b, f"{a}+{b}={a + b}"), (a * b, f"{a}*{b}={a * b}")]
    lo, hi = (a, b) if a <= b else (b, a)
    out.append((hi - lo, f"{hi}-{lo}={hi - lo}"))
    if lo != 0 and hi % lo == 0:
        out.append((hi // lo, f"{hi}/{lo}={hi // lo}"))
    return out


def solve(target: int, nums: list[int], operations: tuple[str, ...] = ()) -> list[str] | None:
    """The reference's depth-first `CountDown.search`: the first solution's operations."""
    if len(nums) == 1:
        return list(operations) if nums[0] == target else None
    for i, j in itertools.combinations(range(len(nums)), 2):
        rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
        for value, op in combine_nums(nums[i], nums[j]):
            found = solve(target, rest + [value], operations + (op,))
            if found is not None:
                return found
    return None


def generate(n: int, seed: int = 42, *, start_size: int = 4, max_target: int = 100,
             min_target: int = 10) -> list[tuple[CountdownProblem, list[str]]]:
    """`n` distinct solvable problems with one solution each."""
    if n < 1 or start_size < 2 or max_target < max(min_target, 2):
        raise ValueError("need n >= 1, start_size >= 2 and max_target >= max(min_target, 2)")
    rng = random.Random(seed)
    seen: set[tuple[tuple[int, ...], int]] = set()
    out = []
    while len(out) < n:
        rng.randint(start_size, start_size)  # generate_problem draws the size (4..4): keep the stream in step
        target = rng.randint(min_target, max_target)
        while True:
            nums = [rng.randint(1, max_target - 1) for _ in range(start_size)]
            solution = solve(target, nums)
            if solution is not None:
                break
        key = (tuple(sorted(nums)), target)
        if key in seen:
            continue
        seen.add(key)
        out.append((CountdownProblem(target, tuple(nums)), solution))
    return out


def prompt_for(problem: CountdownProblem, fmt: str = "apr") -> str:
    if fmt == "apr":
        return root_prefix(problem.target, problem.nums)
    if fmt == "instruct":
        return (f"Using the numbers {list(problem.nums)}, create an equation that equals {problem.target}. "
                "Use +, -, * and / (exact division only) and each number exactly once. "
                "Write the final equation in \\boxed{}.")
    raise ValueError(f"unknown Countdown prompt format {fmt!r}; known: {', '.join(FORMATS)}")


def rows(n: int, seed: int = 42, fmt: str = "apr", **kw: Any) -> list[dict[str, Any]]:
    """Dataset rows (`id`, `prompt`, `answer`, `task`, `target`, `nums`, `solution`)."""
    return [{"id": f"countdown-{seed}-{i}", "prompt": prompt_for(p, fmt), "answer": reference_string(p),
             "task": "countdown", "target": p.target, "nums": list(p.nums), "solution": sol}
            for i, (p, sol) in enumerate(generate(n, seed, **kw))]


def write_jsonl(path: str | Path, n: int, seed: int = 42, fmt: str = "apr", **kw: Any) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n, seed, fmt, **kw)))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m parareason.io.countdown", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--format", choices=FORMATS, default="apr")
    ap.add_argument("--start-size", type=int, default=4)
    ap.add_argument("--max-target", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        path = write_jsonl(a.out, a.n, a.seed, a.format, start_size=a.start_size, max_target=a.max_target)
    except ValueError as e:
        ap.error(str(e))
    print(f"wrote {a.n} Countdown problems to {path}")


if __name__ == "__main__":
    main()
