"""SCALE's prompts and the pure logic around them: decomposition parsing, difficulty."""
from __future__ import annotations

import math
import re
from typing import Sequence

DECOMPOSE_PROMPT = (
    "Break the following problem into at most {max_sub} short sub-problems that, solved in "
    "order, lead to the answer. Write one per line as a numbered list (1., 2., ...). "
    "Do not solve them.\n\nProblem: {question}")

SUBPROBLEM_PROMPT = (
    "Problem: {question}\n\n{solved}Now solve only this step: {step}\n"
    "Reason briefly, then put the result of this step in \\boxed{{}}.")

SYNTHESIS_PROMPT = (
    "Problem: {question}\n\n{solved}Using these results, solve the problem and put the final "
    "answer in \\boxed{{}}.")

_NUMBERED_RE = re.compile(r"^\s*(?:\*\*)?(?:step\s*)?(\d+)\s*[.):]\s*(?:\*\*)?\s*(.+?)\s*$", re.I)


def parse_subproblems(text: str, max_sub: int) -> list[str]:
    """Numbered lines ("1. ...", "2) ...", "Step 3: ...") in order, at most `max_sub`;
    [] when the model wrote no numbered list (the caller falls back to one step)."""
    steps: list[str] = []
    for line in text.splitlines():
        m = _NUMBERED_RE.match(line)
        if m and m.group(2).strip(" *"):
            steps.append(m.group(2).strip(" *"))
        if len(steps) >= max_sub:
            break
    return steps


def solved_block(steps: Sequence[str], answers: Sequence[str | None]) -> str:
    """The earlier sub-problems with their answers, propagated into later prompts."""
    if not answers:
        return ""
    lines = [f"{i + 1}. {steps[i]} Result: {a if a is not None else 'unknown'}"
             for i, a in enumerate(answers)]
    return "Solved so far:\n" + "\n".join(lines) + "\n\n"


def estimate_difficulty(answers: Sequence[str | None], mean_logprobs: Sequence[float | None],
                        agree: int) -> float:
    """Difficulty in [0, 1] from quick probe samples: 1 - agreement * confidence.

    agreement = share of probes that gave the plurality answer (`agree` of them);
    confidence = mean over probes of exp(mean token logprob), the per-token probability.
    A probe without an answer makes the step hard: it did not finish the short pass.
    """
    if not answers or any(a is None for a in answers):
        return 1.0
    probs = [math.exp(lp) if lp is not None else 0.0 for lp in mean_logprobs]
    confidence = sum(probs) / len(probs)
    agreement = agree / len(answers)
    return max(0.0, min(1.0, 1.0 - agreement * confidence))
