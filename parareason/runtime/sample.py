"""Sample: one run of the request's protocol from its first thread(s).

Implements the read-only `SampleView` that policies see. `token_ids`/`logprobs` are
the main thread's model-generated tokens; `text` is the main thread's visible text
(including runtime-inserted join results), decoded lazily and cached.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from parareason.backends.base import SamplingParams
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread

if TYPE_CHECKING:
    from parareason.runtime.protocols.base import Protocol
    from parareason.runtime.scope import Scope

# Sample answers are reported for samples that ran to an end of their own.
ANSWERING = frozenset({Status.FINISHED, Status.LIMIT})


class Sample:
    def __init__(self, sample_id: str, scope: "Scope", *, tag: str, prompt: str, params: SamplingParams,
                 protocol: "Protocol", decode: Callable[[Sequence[int]], str]) -> None:
        self.id = sample_id
        self.scope = scope
        self.tag = tag
        self.prompt = prompt
        self.params = params
        self.temperature = params.temperature
        self.protocol = protocol
        self.threads: list[Thread] = []  # run ones, and refused ones the ThreadTable keeps
        self.threads_made = 0  # every thread created, kept or not: numbers their ids
        self.main: Thread | None = None  # the answer-bearing thread (set by the protocol)
        self.end_status: Status | None = None
        self.end_reason: str | None = None
        self._generated = 0
        self._answer: str | None = None
        self._decode = decode
        self._text_cache: tuple[int, str] = (-1, "")

    # -- SampleView --------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.end_status is None

    @property
    def status(self) -> Status:
        return self.end_status or Status.RUNNING

    @property
    def generated_tokens(self) -> int:
        return self._generated

    @property
    def token_ids(self) -> Sequence[int]:
        return self.main.gen_ids if self.main else ()

    @property
    def logprobs(self) -> Sequence[float]:
        return self.main.logprobs if self.main else ()

    @property
    def top_logprobs(self) -> Sequence[Sequence[tuple[int, float]]] | None:
        return self.main.top_logprobs if self.main else None

    @property
    def text(self) -> str:
        if self.main is None:
            return ""
        ids = self.main.own_ids
        if self._text_cache[0] != len(ids):
            self._text_cache = (len(ids), self._decode(ids))
        return self._text_cache[1]

    @property
    def answer(self) -> str | None:
        return self._answer

    # -- runtime side ----------------------------------------------------------------
    def add_generated(self, n: int) -> None:
        self._generated += n

    def all_threads_ended(self) -> bool:
        return all(not t.live for t in self.threads)

    def end_by_threads(self) -> tuple[Status, str | None] | None:
        """Once every thread has ended: the sample's end (its main thread's, else why
        none answers); None while a thread is live."""
        if not self.all_threads_ended():
            return None
        if self.main is not None:
            return self.main.status, self.main.reason
        if not self.threads:
            return Status.FAILED, "protocol created no thread"
        reasons = sorted({t.reason or t.status for t in self.threads})
        status = Status.LIMIT if any(t.status == Status.LIMIT for t in self.threads) else Status.FAILED
        return status, "no main thread: " + "; ".join(reasons)

    def close(self, status: Status, reason: str | None) -> None:
        """Mark the sample ended; its answer is its main thread's if it ended on its own."""
        answering = status in ANSWERING and self.main is not None
        self.end_status, self.end_reason = status, reason
        self._answer = self.main.answer if answering else None

    def __repr__(self) -> str:
        return f"Sample({self.id}, {self.status}, gen={self._generated})"
