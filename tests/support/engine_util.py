"""Shared helpers for the embedded-engine tests (tests/test_engine_*.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from parareason.backends.base import Backend, GenerationRequest, SamplingParams, SeqUpdate

TEST_MODEL = "smollm2-135m"  # small shipped model: fast enough for the default suite

PROMPTS = [
    "What is 12 plus 30?",
    "Write one sentence about the sea.",
    "Name three primary colors.",
    "How many legs does a spider have?",
]


@dataclass
class Collected:
    """Everything a backend reported for one sequence."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    updates: list[SeqUpdate] = field(default_factory=list)

    @property
    def first(self) -> SeqUpdate:
        return self.updates[0]

    @property
    def last(self) -> SeqUpdate:
        return self.updates[-1]


def collect(updates: list[SeqUpdate], into: dict[str, Collected]) -> None:
    for u in updates:
        c = into.setdefault(u.seq_id, Collected())
        c.tokens.extend(u.token_ids)
        c.logprobs.extend(u.logprobs)
        c.updates.append(u)


def run_all(engine: Backend, into: dict[str, Collected] | None = None, max_steps: int = 10_000) -> dict[str, Collected]:
    into = {} if into is None else into
    for _ in range(max_steps):
        if not engine.has_work():
            return into
        collect(engine.step(), into)
    raise AssertionError("engine did not finish")


def greedy(max_new_tokens: int, **kw) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, **kw)


def request(seq_id: str, ids, params: SamplingParams) -> GenerationRequest:
    return GenerationRequest(seq_id, tuple(ids), params)
