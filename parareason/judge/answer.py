"""Answer judge: compare the final answers themselves (math-verify equivalence).

Exact once both traces are finished; it knows nothing about unfinished ones. A trace
counts as finished when its text carries an explicit final answer (a `\\boxed{}`, a
GSM8K `#### n` line or an "the answer is ..." phrase); a bare last number in a
partial trace is not an answer yet.

Documented fallback for unfinished traces: `unknown` (0.5) by default; with
`guess_partial=True` the last number of a partial trace stands in for its answer,
scored `partial_same` / `partial_different` (a weak hint, not a verdict).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from parareason.grading import answers_equal, extract_answer, last_boxed
from parareason.judge.base import Judge

_EXPLICIT_RE = re.compile(r"####|(?:final answer|the answer)\s*(?:is|:|=)", re.IGNORECASE)


def final_answer(text: str) -> str | None:
    """The trace's final answer if it states one explicitly, else None."""
    if last_boxed(text) is None and not _EXPLICIT_RE.search(text):
        return None
    return extract_answer(text)


@dataclass
class AnswerJudgeConfig:
    unknown: float = 0.5
    guess_partial: bool = False
    partial_same: float = 0.7
    partial_different: float = 0.3


class AnswerJudge(Judge):
    name: ClassVar[str] = "answer"

    def __init__(self, config: AnswerJudgeConfig | None = None):
        self.config = config or AnswerJudgeConfig()

    def score(self, trace_a: str, trace_b: str) -> float:
        a, b = final_answer(trace_a), final_answer(trace_b)
        if a is not None and b is not None:
            return 1.0 if answers_equal(a, b) else 0.0
        if not self.config.guess_partial:
            return self.config.unknown
        ga, gb = a or extract_answer(trace_a), b or extract_answer(trace_b)
        if ga is None or gb is None:
            return self.config.unknown
        return self.config.partial_same if answers_equal(ga, gb) else self.config.partial_different
