"""ThreadWeaver protocol: parallel blocks inside one reasoning trajectory.

The model writes

    <Parallel>
    <Outlines>
    <Outline>1: check the even case</Outline>
    <Outline>2: check the odd case</Outline>
    </Outlines>

and halts at `</Outlines>` (a stop string). One thread per outline forks from the
current trie node (every thread sees the whole shared prefix) and starts with
`<Thread>\\nk:`; it runs until `</Thread>`. When all threads of the block have
ended, the parent continues with the block in its context: each thread's token
ids (copied, never re-tokenized), then `</Parallel>`. Threads may open blocks
of their own (nesting, bounded by `Limits.max_spawn_depth`). A block left open at
EOS ends the thread with `unclosed_parallel (...)`.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from parareason.runtime.protocols.base import ThreadOps, block_body, closed_by, end_reason, unclosed
from parareason.runtime.protocols.joining import JoiningProtocol
from parareason.runtime.thread import Thread


class ThreadWeaverProtocol(JoiningProtocol):
    name = "threadweaver"
    children_key = "block"
    defaults: dict[str, Any] = {
        "parallel_open": "<Parallel>",
        "parallel_close": "</Parallel>",
        "outlines_open": "<Outlines>",
        "outlines_close": "</Outlines>",
        "outline_open": "<Outline>",
        "outline_close": "</Outline>",
        "thread_open": "<Thread>",
        "thread_close": "</Thread>",
    }

    def default_instructions(self) -> str:
        c = {**self.defaults, **getattr(self, "config", {})}
        return (
            "Solve the problem step by step. When parts of the work are independent, explore them in parallel: "
            f"write {c['parallel_open']} then {c['outlines_open']} with one {c['outline_open']}k: plan"
            f"{c['outline_close']} per part, then {c['outlines_close']} and stop. Each part is then worked out "
            f"in its own {c['thread_open']}...{c['thread_close']}, and you continue after {c['parallel_close']}. "
            "Put the final answer in \\boxed{}."
        )

    def parse_outlines(self, body: str) -> list[str]:
        c = self.config
        tagged = re.findall(re.escape(c["outline_open"]) + r"(.*?)" + re.escape(c["outline_close"]), body, re.S)
        items = tagged if tagged else body.splitlines()
        return [x.strip() for x in items if x.strip()]

    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        sample.main = ops.new_thread(sample, prompt_ids, role="root", stop_strings=(self.config["outlines_close"],))

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        c = self.config
        block = closed_by(ops, thread, c["outlines_close"], matched_stop)
        if block is not None:
            self._open_block(ops, thread, block)
            return
        if thread.role == "branch" and closed_by(ops, thread, c["thread_close"], matched_stop) is not None:
            ops.finish(thread, "thread_closed")
            return
        text = ops.decode(thread.run_ids())
        if unclosed(text, c["outlines_open"], c["outlines_close"]) or \
                unclosed(text, c["parallel_open"], c["parallel_close"]) and c["outlines_open"] not in text:
            ops.finish(thread, f"unclosed_parallel ({finish_reason})")
        elif thread.role == "branch":
            ops.finish(thread, f"unclosed_thread ({end_reason(finish_reason, matched_stop)})")
        else:
            ops.finish(thread, end_reason(finish_reason, matched_stop))

    def _open_block(self, ops: ThreadOps, thread: Thread, text: str) -> None:
        c = self.config
        body = block_body(text, c["outlines_open"], c["outlines_close"])
        if body is None:
            ops.finish(thread, "malformed_parallel: outlines close without open")
            return
        outlines = self.parse_outlines(body)
        if not outlines:
            ops.finish(thread, "empty_parallel")
            return
        ops.wait(thread)
        branches = []
        for k in range(len(outlines)):
            prefix = ops.encode(f"\n{c['thread_open']}\n{k + 1}:")
            branches.append(ops.fork(thread, prefix, role="branch", child_index=k,
                                     stop_strings=(c["thread_close"], c["outlines_close"])))
        self.await_children(ops, thread, branches, "parallel", outlines=len(outlines))

    def append_results(self, ops: ThreadOps, parent: Thread, children: list[Thread]) -> None:
        c = self.config
        close_ids = ops.encode(c["thread_close"])
        for branch in children:
            if not branch.own_ids:
                continue  # never ran (refused by a limit)
            ops.append(parent, branch.own_ids)  # the branch's exact ids: no re-tokenization
            if branch.reason != "thread_closed":
                ops.append(parent, close_ids)
        ops.append(parent, ops.encode(f"\n{c['parallel_close']}\n"))
        ops.record("join", thread=parent.id)
