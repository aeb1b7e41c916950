"""SCALE's prompts and the pure logic around them: outline parsing, version choice,
difficulty scores, the solved-steps context, and the probe-based difficulty (an option).

The prompts follow XiaoYang66/DualThinking `inference/cot_dual_thinking.py`
(OUTLINE_INSTRUCTION, OUTLINE_INSTRUCTION_SELECTION, SCORE_INSTRUCTION,
DETAIL_INSTRUCTION and the user messages built in `thinking_scores` and
`thinking_details`), shortened for small models; the system instruction is the first
paragraph of the one user message (a policy launches plain prompts).
"""
from __future__ import annotations

import json
import math
import re
from typing import Sequence

OUTLINE_PROMPT = (
    "Decompose the math problem below into a short sequence of clear sub-problems that build "
    "toward the final answer (at most {max_sub}). Say WHAT each step must achieve, not how; do not "
    "solve anything or give numbers. Answer only with JSON: "
    '{{"step1": "...", "step2": "..."}}.\n\nProblem: {question}')

SELECT_PROMPT = (
    "Below are several versions of the steps for solving a math problem. Pick the version most "
    "likely to lead to the correct answer: logically correct, clear, complete, relevant and simple. "
    "Reply only with the version id, such as version1.\n\nQuestion: {question}\n\n{versions}")

SCORE_PROMPT = (
    "Rate the difficulty of the next step of this solution with one number between 0 and 1. "
    "0-0.5: simple, a school student solves it quickly; 0.5-1: hard, it needs extensive thinking. "
    "Reply only with the number.\n\nproblem: {question}\ncurrent solution process: {process}\n"
    "next step to be solved: {step}")

DETAIL_PROMPT = (
    "Please reason step by step, and put your final answer within \\boxed{{}}.\n\n"
    "Given conditions: {question}\nCurrent process: {process}\nQuestion: {step}")

FINAL_STEP_SCORE = 0.9  # the reference scores the last step (the question itself) 0.9: thinking mode

_NUMBERED_RE = re.compile(r"^\s*(?:\*\*)?(?:step\s*)?(\d+)\s*[.):]\s*(?:\*\*)?\s*(.+?)\s*$", re.I)
_STEP_KEY = re.compile(r"^step(\d+)$")
_VERSION = re.compile(r"version\s*(\d+)", re.I)
_NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")


def parse_subproblems(text: str, max_sub: int) -> list[str]:
    """Numbered lines ("1. ...", "2) ...", "Step 3: ...") in order, at most `max_sub`;
    [] when the model wrote no numbered list."""
    steps: list[str] = []
    for line in text.splitlines():
        m = _NUMBERED_RE.match(line)
        if m and m.group(2).strip(" *"):
            steps.append(m.group(2).strip(" *"))
        if len(steps) >= max_sub:
            break
    return steps


def parse_outline(text: str, max_sub: int) -> list[str]:
    """The reference's JSON outline {"step1": ..., "step2": ...} (a ```json fence is
    stripped, single backslashes doubled as `fix_single_backslashes_regex` does), steps
    in key order; a numbered list is accepted too (small models); [] when neither parses."""
    body = text.split("```json")[-1].split("```")[0].strip()
    m = re.search(r"\{.*\}", body, re.S)
    if m:
        try:
            data = json.loads(re.sub(r"(?<!\\)\\(?!\\)", r"\\\\", m.group(0)))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data and all(_STEP_KEY.match(str(k)) for k in data):
            steps = [str(v).strip() for _, v in sorted(data.items(), key=lambda kv: int(kv[0][4:]))]
            steps = [s for s in steps if s]
            if steps:
                return steps[:max_sub]
    return parse_subproblems(text, max_sub)


def versions_block(outlines: Sequence[Sequence[str]]) -> str:
    return "\n".join(f"version{i + 1}: " + json.dumps({f"step{j + 1}": s for j, s in enumerate(o)})
                     for i, o in enumerate(outlines))


def parse_version(text: str, count: int) -> int | None:
    """0-based index of the first "versionN" with 1 <= N <= count, else None."""
    for m in _VERSION.finditer(text):
        k = int(m.group(1))
        if 1 <= k <= count:
            return k - 1
    return None


def parse_score(text: str) -> float | None:
    """The first number of the reply, when it lies in [0, 1] (the reference retries otherwise)."""
    m = _NUMBER.search(text.strip())
    if not m:
        return None
    v = float(m.group(0))
    return v if 0.0 <= v <= 1.0 else None


def process_text(steps: Sequence[str], answers: Sequence[str | None] | None = None) -> str:
    """The current solution process: earlier steps (scoring sees only their text, solving
    also their answers, as `thinking_scores` / `thinking_details`)."""
    if answers is None:
        return " ".join(steps)
    return " ".join(f"{s}\nstep answer:{a if a is not None else 'unknown'}" for s, a in zip(steps, answers))


def solved_block(steps: Sequence[str], answers: Sequence[str | None]) -> str:
    """The earlier sub-problems with their answers (kept for callers of the older flow)."""
    if not answers:
        return ""
    lines = [f"{i + 1}. {steps[i]} Result: {a if a is not None else 'unknown'}"
             for i, a in enumerate(answers)]
    return "Solved so far:\n" + "\n".join(lines) + "\n\n"


def estimate_difficulty(answers: Sequence[str | None], mean_logprobs: Sequence[float | None],
                        agree: int) -> float:
    """Probe-based difficulty in [0, 1] (`difficulty="probe"`): 1 - agreement * confidence.

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
