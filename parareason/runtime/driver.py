"""Drive a list of requests through one Scheduler: what `Engine.run`, the CLI's
record command and the benchmarks share.

Up to `max_concurrent` requests share the backend's batch; results arrive in completion
order and go to `on_result` at once. `request_seed` fixes each request's seed from the
run seed and the prompt id, so a result never depends on batch composition or order.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from parareason.backends.base import Backend, GenerationRequest, SeqUpdate
from parareason.runtime.policy import policy_width
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler

__all__ = ["StepStats", "drive_scheduler", "policy_width", "request_seed"]
StepCallback = Callable[[dict[str, int]], None]


def request_seed(seed: int, prompt_id: str) -> int:
    """A request's seed depends on the run seed and the prompt id only (a resumed run
    repeats an uninterrupted one)."""
    h = hashlib.sha256(f"{seed}\x00{prompt_id}".encode()).digest()
    return int.from_bytes(h[:4], "little")


class StepStats(Backend):
    """Pass-through backend that counts live sequences and generated tokens per step,
    so progress can be shown without reaching into the scheduler."""

    def __init__(self, inner: Backend, on_step: StepCallback):
        self.inner, self.on_step = inner, on_step
        self.name, self.tokenizer = inner.name, inner.tokenizer
        self._live: set[str] = set()
        self.generated = 0

    def submit(self, req: GenerationRequest) -> None:
        self._live.add(req.seq_id)
        self.inner.submit(req)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates = self.inner.step(timeout_s)
        for u in updates:
            self.generated += len(u.token_ids)
            if u.finished:
                self._live.discard(u.seq_id)
        self.on_step({"live_threads": len(self._live), "generated_tokens": self.generated})
        return updates

    def abort(self, seq_id: str) -> None:
        self.inner.abort(seq_id)

    def has_work(self) -> bool:
        return self.inner.has_work()


def drive_scheduler(backend: Backend, specs: Sequence[RequestSpec], *, max_concurrent: int,
                    on_result: Callable[[Result], None] | None = None,
                    on_step: StepCallback | None = None,
                    trace_sink: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Result]:
    """Run `specs` to completion; returns {request id: Result}."""
    backend.expect_concurrency(max_concurrent * max((policy_width(s.policy) for s in specs), default=1))
    sched = Scheduler(StepStats(backend, on_step) if on_step else backend, trace_sink=trace_sink)
    results: dict[str, Result] = {}
    for result in sched.run(list(specs), max_concurrent=max_concurrent):
        results[result.id] = result
        if on_result is not None:
            on_result(result)
    return results
