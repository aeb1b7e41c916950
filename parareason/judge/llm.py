"""LLM judge: ask a model whether two partial traces will reach the same answer.

The judge never calls a model directly: it builds the comparison prompt with the
backend's tokenizer, submits it as a sequence through the `Backend` interface (the
same one the scheduler drives), and reads P(yes) from the first generated token's
top logprobs (" yes"/"Yes"/... against " no"/"No"/...). When neither appears among
the alternatives, the generated text decides (yes -> 1, no -> 0, else 0.5).

Give it a backend that no scheduler is stepping at the same time (e.g. a second
engine instance): `step()` returns every sequence's updates, and the judge consumes
all of them until its own sequences finish.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

from parareason.judge.base import Judge, clamp_probability
from parareason.backends.base import Backend, GenerationRequest, SamplingParams

PROMPT = (
    "Two students are solving the same math problem. Below are the beginnings of their "
    "(possibly unfinished) solutions.\n\n"
    "{question}"
    "Solution A:\n{a}...\n\nSolution B:\n{b}...\n\n"
    "Will both solutions end with the same final answer? Reply with one word: yes or no."
)
YES_WORDS = ("yes", " yes", "Yes", " Yes", "YES")
NO_WORDS = ("no", " no", "No", " No", "NO")


@dataclass
class LLMJudgeConfig:
    max_trace_chars: int = 1200  # equal-length prefixes of at most this many characters (context is small)
    top_logprobs: int = 20
    max_new_tokens: int = 2
    question: str | None = None  # the problem statement, when known
    max_steps: int = 100_000  # safety bound on backend steps per batch


class LLMJudge(Judge):
    name: ClassVar[str] = "llm"
    _counter = itertools.count()

    def __init__(self, backend: Backend, config: LLMJudgeConfig | None = None):
        self.backend = backend
        self.config = config or LLMJudgeConfig()
        tok = backend.tokenizer
        self._yes = self._first_ids(YES_WORDS)
        self._no = self._first_ids(NO_WORDS) - self._yes
        self._tok = tok

    def _first_ids(self, words: Sequence[str]) -> set[int]:
        ids = set()
        for w in words:
            enc = self.backend.tokenizer.encode(w)
            if enc:
                ids.add(enc[0])
        return ids

    def prompt_ids(self, trace_a: str, trace_b: str) -> list[int]:
        n = self.config.max_trace_chars
        q = f"Problem:\n{self.config.question}\n\n" if self.config.question else ""
        # the start of each (score_against has already cut a pair to equal-length prefixes)
        text = PROMPT.format(question=q, a=trace_a[:n], b=trace_b[:n])
        return self._tok.chat_ids([{"role": "user", "content": text}], add_generation_prompt=True)

    def for_question(self, question: str | None) -> "LLMJudge":
        """The same judge (same backend) with `question` in its prompt."""
        judge = copy.copy(self)
        judge.config = dataclasses.replace(self.config, question=question)
        return judge

    def score(self, trace_a: str, trace_b: str) -> float:
        return self.score_many([(trace_a, trace_b)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        params = SamplingParams(temperature=0.0, max_new_tokens=self.config.max_new_tokens,
                                top_logprobs=self.config.top_logprobs)
        ids = {}
        for a, b in pairs:
            seq_id = f"llm-judge-{next(self._counter)}"
            ids[seq_id] = len(ids)
            self.backend.submit(GenerationRequest(seq_id, tuple(self.prompt_ids(a, b)), params,
                                                  affinity_key="llm-judge"))
        first_top: dict[str, list[tuple[int, float]]] = {}
        tokens: dict[str, list[int]] = {s: [] for s in ids}
        done: set[str] = set()
        for _ in range(self.config.max_steps):
            if len(done) == len(ids):
                break
            for u in self.backend.step():
                if u.seq_id not in ids:
                    continue  # not ours (see module docstring)
                if u.top_logprobs and u.seq_id not in first_top and not tokens[u.seq_id]:
                    first_top[u.seq_id] = list(u.top_logprobs[0])
                tokens[u.seq_id].extend(u.token_ids)
                if u.finished:
                    done.add(u.seq_id)
        for s in set(ids) - done:
            self.backend.abort(s)
        out = [0.5] * len(pairs)
        for s, i in ids.items():
            out[i] = self._p_yes(first_top.get(s), tokens[s])
        return out

    def _p_yes(self, top: list[tuple[int, float]] | None, tokens: list[int]) -> float:
        if top:
            p_yes = sum(math.exp(lp) for t, lp in top if t in self._yes)
            p_no = sum(math.exp(lp) for t, lp in top if t in self._no)
            if p_yes + p_no > 0:
                return clamp_probability(p_yes / (p_yes + p_no))
        text = self._tok.decode(tokens).strip().lower()
        if text.startswith("yes"):
            return 1.0
        if text.startswith("no"):
            return 0.0
        return 0.5
