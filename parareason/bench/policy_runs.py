"""What `bench policies` and `bench deepprune` share: the question loader, one policy's
run summed into a PolicyRun, the Results JSONL, and the table cells both tables open with.

Kept in one place so the two benchmarks count accuracy, answers, tokens and errors the
same way and their tables stay comparable.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Sequence


def load_questions(path: Path, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """`limit` rows of a GSM8K-style JSONL from row `offset`, reduced to id, question, answer.

    Goes through the same validated loader as `parareason run`, so a bad file gets a
    `file:line: message` error rather than a traceback."""
    from parareason.io.prompts import load_prompts

    rows = load_prompts(path)[offset:offset + limit]
    return [{"id": r.id, "question": r.prompt, "answer": r.answer} for r in rows]


@dataclass
class PolicyRun:
    policy: str
    settings: dict[str, Any] | str  # parameters (bench policies) or a ready description (bench deepprune)
    correct: int
    total: int
    answered: int
    generated_tokens: int
    wall_s: float
    errors: int
    sequential_tokens: int = 0  # summed over questions: each request's latency in decode steps
    # the run's Results (what the confidence intervals and the SC@k curve are computed from)
    results: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def sequential_per_question(self) -> float:
        return self.sequential_tokens / self.total if self.total else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def result_counts(results: Sequence[Any]) -> dict[str, int]:
    """The PolicyRun counts over one policy's Results (everything but policy, settings, wall)."""
    return dict(correct=sum(1 for r in results if r.correct), total=len(results),
                answered=sum(1 for r in results if r.answer is not None),
                generated_tokens=sum(r.usage.get("generated_tokens", 0) for r in results),
                errors=sum(1 for r in results if r.error),
                sequential_tokens=sum(r.usage.get("sequential_tokens", 0) for r in results))


def write_results(results_file: IO[str] | None, results: Iterable[Any]) -> None:
    """Append every Result as one JSON line (nothing when --results was not given)."""
    if results_file is None:
        return
    for r in results:
        results_file.write(json.dumps(r.to_dict(), default=str) + "\n")
    results_file.flush()  # a later kill must not lose a finished policy's Results


def percent_of(value: float, base: float) -> str:
    """`value` as a whole percent of `base`; "n/a" where there is no base to compare with."""
    return f"{100 * value / base:.0f}%" if base else "n/a"


# The columns both benchmark tables open with; each appends its own after them.
LEADING_COLUMNS = ("policy", "settings", "accuracy", "answered", "generated tokens", "tokens vs SC")


def leading_cells(run: PolicyRun, baseline_tokens: int) -> list[str]:
    """One run's cells under LEADING_COLUMNS, tokens relative to the baseline's."""
    settings = run.settings if isinstance(run.settings, str) else ", ".join(f"{k}={v}" for k, v in run.settings.items())
    return [run.policy, settings, f"{run.accuracy:.1%} ({run.correct}/{run.total})", f"{run.answered}/{run.total}",
            str(run.generated_tokens), percent_of(run.generated_tokens, baseline_tokens)]
