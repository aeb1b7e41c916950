"""Plain protocol: one thread per sample; the thread's text is the sample's answer."""
from __future__ import annotations

from typing import Any, Sequence

from parareason.runtime.protocols.base import Protocol, ThreadOps, end_reason
from parareason.runtime.thread import Thread


class PlainProtocol(Protocol):
    name = "plain"
    defaults: dict[str, Any] = {}

    def default_instructions(self) -> str:
        return ("Solve the problem step by step. Put the final answer in \\boxed{}.")

    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        sample.main = ops.new_thread(sample, prompt_ids, role="root")

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        ops.finish(thread, end_reason(finish_reason, matched_stop))
