"""Sample: one run of the request's protocol from its first thread(s).

Implements the read-only `SampleView` that policies see. `token_ids`/`logprobs` are
the main thread's model-generated tokens; `text` is the main thread's visible text
(including runtime-inserted join results), decoded lazily and cached.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from parareason.backends.base import SamplingParams
from parareason.runtime.thread import LIMIT, Thread

if TYPE_CHECKING:
    from parareason.runtime.protocols.base import Protocol
    from parareason.runtime.scope import Scope

RUNNING = "running"


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
        self.threads: list[Thread] = []
        self.main: Thread | None = None  # the answer-bearing thread (set by the protocol)
        self.end_status: str | None = None
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
    def status(self) -> str:
        return self.end_status or RUNNING

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

    def close(self, status: str | None = None, reason: str | None = None, answer: str | None = None) -> None:
        """Mark the sample ended; status defaults to the main thread's."""
        if status is None:
            status = self.main.status if self.main is not None else LIMIT
            reason = self.main.reason if self.main is not None else "no main thread"
        self.end_status, self.end_reason, self._answer = status, reason, answer

    def __repr__(self) -> str:
        return f"Sample({self.id}, {self.status}, gen={self._generated})"
