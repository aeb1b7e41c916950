"""Assemble a request's `Result` (the output contract) from explicit values of its run."""
from __future__ import annotations

import time
from typing import Sequence

from parareason.runtime.policy import Decision
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result, ThreadRecord
from parareason.runtime.thread import Thread
from parareason.runtime.trace import Trace


def build_result(spec: RequestSpec, decision: Decision, *, threads: Sequence[Thread], usage: dict[str, int],
                 error: str | None, started_at: float, trace: Trace,
                 protocol_notes: dict | None = None, omitted: dict[str, int] | None = None) -> Result:
    """Grade the answer, trace `request_end` and build the Result (statuses as plain strings).
    `protocol_notes` (e.g. an approximation a protocol made) come first in `details`; the
    policy's own details follow. `omitted`: refused threads not in `threads`, by reason."""
    correct = None
    if spec.reference is not None:
        from parareason.grading import is_correct
        correct = is_correct(decision.answer, spec.reference)
    trace.emit("request_end", answer=decision.answer, correct=correct, error=error,
               tokens=usage["generated_tokens"], threads=len(threads) + sum((omitted or {}).values()))
    return Result(
        id=spec.id, prompt=spec.prompt, answer=decision.answer, correct=correct,
        policy=spec.policy.name, protocol=spec.protocol,
        threads=[ThreadRecord(id=t.id, parent=t.parent.id if t.parent else None, status=str(t.status),
                              reason=t.reason, tokens=t.generated, answer=t.answer) for t in threads],
        omitted_threads=dict(sorted((omitted or {}).items())),
        usage=usage, latency_s=round(time.monotonic() - started_at, 6), error=error, reference=spec.reference,
        details={**(protocol_notes or {}), **decision.details}, trace=list(trace.events) if spec.keep_trace else None,
    )

