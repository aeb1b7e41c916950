"""ParaThinker protocol: N independent reasoning paths, then one summary.

Each of `n_paths` threads starts from the same prompt (shared in the trie) followed
by its own control prefix `<think path=k>` and runs until `</think>`. When every
path has ended, a summary thread gets a context holding the prompt and all paths
(their exact token ids) followed by `<summary>`, and writes the final answer: the
sample's answer comes from the summary thread (`sample.main`).
"""
from __future__ import annotations

from typing import Any, Sequence

from parareason.runtime.protocols.base import Protocol, ThreadOps, closed_by, end_reason
from parareason.runtime.thread import Thread


class ParaThinkerProtocol(Protocol):
    name = "parathinker"
    defaults: dict[str, Any] = {
        "n_paths": 4,
        "path_open": "<think path={k}>",  # {k} = 1..n_paths
        "path_close": "</think>",
        "summary_open": "<summary>",
        "summary_close": "</summary>",
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if int(self.config["n_paths"]) < 1:
            raise ValueError("parathinker: n_paths must be >= 1")
        self._prompt_ids: dict[str, list[int]] = {}

    def default_instructions(self) -> str:
        c = {**self.defaults, **getattr(self, "config", {})}
        return (
            "Think about the problem step by step inside your thinking block and close it with "
            f"{c['path_close']}. Several independent lines of thought are written; after them, inside "
            f"{c['summary_open']}...{c['summary_close']}, compare them and give the final answer in \\boxed{{}}."
        )

    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        c = self.config
        self._prompt_ids[sample.id] = list(prompt_ids)
        for k in range(1, int(c["n_paths"]) + 1):
            path = ops.new_thread(sample, prompt_ids, role="path", stop_strings=(c["path_close"],))
            if path.live:
                ops.append(path, ops.encode(c["path_open"].format(k=k) + "\n"))
        sample.main = None  # the summary, once all paths end
        if not any(t.live for t in sample.threads):
            self._summarize(ops, sample)

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        if thread.role == "path":
            closed = closed_by(ops, thread, self.config["path_close"], matched_stop) is not None
            ops.finish(thread, "path_closed" if closed else end_reason(finish_reason, matched_stop))
        else:
            ops.finish(thread, end_reason(finish_reason, matched_stop))

    def on_thread_end(self, ops: ThreadOps, thread: Thread) -> None:
        sample = thread.sample
        if thread.role != "path" or sample.main is not None:
            return
        if not any(t.live for t in sample.threads if t.role == "path"):
            self._summarize(ops, sample)

    def _summarize(self, ops: ThreadOps, sample: Any) -> None:
        c = self.config
        ids = list(self._prompt_ids.pop(sample.id))
        close_ids = ops.encode(c["path_close"] + "\n")
        paths = [t for t in sample.threads if t.role == "path" and t.own_ids]
        for path in paths:
            ids.extend(path.own_ids)  # exact ids: prefix + generated
            if path.reason != "path_closed":
                ids.extend(close_ids)
            else:
                ids.extend(ops.encode("\n"))
        ids.extend(ops.encode(c["summary_open"] + "\n"))
        ops.record("summary", sample=sample.id, paths=len(paths))
        sample.main = ops.new_thread(sample, ids, role="summary", stop_strings=(c["summary_close"],))
