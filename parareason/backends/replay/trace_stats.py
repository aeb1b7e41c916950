"""What a trace file holds: questions, traces, tokens, and how many traces hit the cap.

The cut share is the figure a recording has to state: a trace cut at `max_new_tokens`
(finish reason `length`) votes only if it already wrote an answer.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from parareason.backends.replay.tracefile import RecordedQuestion


@dataclass
class TraceStats:
    questions: int = 0
    traces: int = 0
    generated_tokens: int = 0
    finish_reasons: Counter = field(default_factory=Counter)
    answered: int = 0  # traces with an extracted answer
    cut_answered: int = 0  # cut traces that had written an answer before the cap
    rows: list[int] = field(default_factory=list)
    top_logprobs: int = 0  # alternatives per token (the fewest seen), 0 when none
    max_new_tokens: int | None = None

    @property
    def cut(self) -> int:
        return self.finish_reasons.get("length", 0)

    def lines(self) -> list[str]:
        share = self.cut / self.traces if self.traces else 0.0
        rows = f"rows {min(self.rows)}-{max(self.rows)} ({len(self.rows)} with a row index)" if self.rows else "no row index"
        return [f"{self.questions} questions, {self.traces} traces, {rows}",
                f"{self.generated_tokens} generated tokens ({self.generated_tokens / max(self.traces, 1):.0f} per trace)",
                f"cut at max_new_tokens={self.max_new_tokens}: {self.cut} traces ({100 * share:.1f}%), "
                f"{self.cut_answered} of them had written an answer",
                f"answered: {self.answered} traces ({100 * self.answered / max(self.traces, 1):.1f}%)",
                "finish reasons: " + ", ".join(f"{k} {v}" for k, v in self.finish_reasons.most_common()),
                f"top logprobs per token: {self.top_logprobs}"]


def trace_stats(questions: list[RecordedQuestion]) -> TraceStats:
    s = TraceStats(questions=len(questions))
    fewest: int | None = None
    for q in questions:
        if q.row is not None:
            s.rows.append(q.row)
        s.max_new_tokens = q.sampling.get("max_new_tokens", s.max_new_tokens)
        for ctx in q.contexts:
            for t in ctx.traces:
                s.traces += 1
                s.generated_tokens += len(t.token_ids)
                s.finish_reasons[t.finish_reason] += 1
                s.answered += t.answer is not None
                s.cut_answered += t.finish_reason == "length" and t.answer is not None
                if t.top_logprobs:
                    k = min(len(pos) for pos in t.top_logprobs)
                    fewest = k if fewest is None else min(fewest, k)
    s.top_logprobs = fewest or 0
    return s
