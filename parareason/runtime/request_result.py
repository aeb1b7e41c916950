"""Assemble a request's `Result` (the output contract) from its finished run."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from parareason.runtime.policy import Decision
from parareason.runtime.result import Result, ThreadRecord

if TYPE_CHECKING:
    from parareason.runtime.request_run import RequestRun


def build_result(run: "RequestRun", decision: Decision) -> Result:
    spec = run.spec
    correct = None
    if spec.reference is not None:
        from parareason.grading import is_correct
        correct = is_correct(decision.answer, spec.reference)
    usage = run.usage.to_dict()
    # tokens a backend produced past a budget or after an abort: generated, never accepted
    usage["discarded_tokens"] = run.discarded_tokens
    usage["sequential_tokens"] = run.sequential_tokens
    run.trace.emit("request_end", answer=decision.answer, correct=correct, error=run.error,
                   tokens=run.usage.generated_tokens, threads=len(run.threads))
    return Result(
        id=spec.id, prompt=spec.prompt, answer=decision.answer, correct=correct,
        policy=spec.policy.name, protocol=spec.protocol,
        threads=[ThreadRecord(id=t.id, parent=t.parent.id if t.parent else None, status=t.status,
                              reason=t.reason, tokens=t.generated, answer=t.answer) for t in run.threads],
        usage=usage, latency_s=round(time.monotonic() - run.t0, 6), error=run.error, reference=spec.reference,
        details=_details(run, decision), trace=list(run.trace.events) if spec.keep_trace else None,
    )


def _details(run: "RequestRun", decision: Decision) -> dict:
    """The policy's details, after the protocols' notes (e.g. an approximation they made)."""
    out: dict = {}
    for protocol in run._protocols.values():
        out.update(protocol.result_details())
    out.update(decision.details)
    return out
