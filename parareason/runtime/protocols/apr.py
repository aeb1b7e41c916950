"""APR (Adaptive Parallel Reasoning) protocol: the model spawns child threads.

The model writes a spawn call, e.g.

    <spawn>
    compute 17*23
    compute 41*3
    </spawn>

(one child task per line, or a JSON list of strings). The spawn close marker is a
stop string, so the parent halts right there and waits. Each child runs in its own
context: the shared system prefix plus its task as the user message (children may
spawn again, up to `Limits.max_spawn_depth`). When every child has ended, their
results are appended to the parent's context,

    <join>
    [1] ...child 1's text...
    [2] ...
    </join>

and the parent resumes. A spawn left open at EOS (or length) ends the thread with
reason `unclosed_spawn (...)`; an empty spawn ends it with `empty_spawn`.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from parareason.runtime.protocols.base import ThreadOps, block_body, closed_by, end_reason, unclosed
from parareason.runtime.protocols.joining import JoiningProtocol
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread


def parse_tasks(body: str) -> list[str]:
    """Child tasks from a spawn body: a JSON list of strings, else one task per line."""
    body = body.strip()
    if body.startswith("["):
        try:
            items = json.loads(body)
            if isinstance(items, list):
                return [str(x).strip() for x in items if str(x).strip()]
        except json.JSONDecodeError:
            pass
    tasks = []
    for line in body.splitlines():
        line = line.strip().lstrip("-*").strip()
        if line:
            tasks.append(line)
    return tasks


class APRProtocol(JoiningProtocol):
    name = "apr"
    children_key = "spawn"
    defaults: dict[str, Any] = {
        "spawn_open": "<spawn>",
        "spawn_close": "</spawn>",
        "join_open": "<join>",
        "join_close": "</join>",
        "result_max_chars": 1500,  # tail of each child's text that goes back to the parent
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._system: str | None = None

    def default_instructions(self) -> str:
        c = {**self.defaults, **self.config} if hasattr(self, "config") else self.defaults
        return (
            "Solve the problem step by step. If it splits into independent subtasks, you may delegate them: "
            f"write {c['spawn_open']} then one subtask per line, then {c['spawn_close']} and stop. "
            f"The subtasks are solved in parallel and their results come back between {c['join_open']} and "
            f"{c['join_close']}; then continue. Put the final answer in \\boxed{{}}."
        )

    def messages(self, prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
        msgs = super().messages(prompt, system_prompt)
        self._system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
        return msgs

    def child_messages(self, task: str) -> list[dict[str, str]]:
        # Shared system prefix + the child's task: siblings share the prefix in the trie.
        return ([{"role": "system", "content": self._system}] if self._system else []) + \
            [{"role": "user", "content": task}]

    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        sample.main = ops.new_thread(sample, prompt_ids, role="root", stop_strings=(self.config["spawn_close"],))

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        c = self.config
        text = closed_by(ops, thread, c["spawn_close"], matched_stop)
        if text is None:
            text = ops.decode(thread.run_ids())
            if unclosed(text, c["spawn_open"], c["spawn_close"]):
                ops.finish(thread, f"unclosed_spawn ({finish_reason})")
            else:
                ops.finish(thread, end_reason(finish_reason, matched_stop))
            return
        body = block_body(text, c["spawn_open"], c["spawn_close"])
        if body is None:
            ops.finish(thread, "malformed_spawn: close without open")
            return
        tasks = parse_tasks(body)
        if not tasks:
            ops.finish(thread, "empty_spawn")
            return
        ops.wait(thread)
        children = []
        for k, task in enumerate(tasks):
            ids = ops.tokenizer.chat_ids(self.child_messages(task), add_generation_prompt=True)
            children.append(ops.new_thread(thread.sample, ids, parent=thread, role="child",
                                           stop_strings=(c["spawn_close"],), child_index=k))
        self.await_children(ops, thread, children, "spawn", tasks=len(tasks))

    def append_results(self, ops: ThreadOps, parent: Thread, children: list[Thread]) -> None:
        c = self.config
        parts = []
        for k, child in enumerate(children, start=1):
            text = ops.decode(child.own_ids).strip()[-c["result_max_chars"]:]
            note = "" if child.status == Status.FINISHED else f"({child.reason}) "
            parts.append(f"[{k}] {note}{text}".rstrip())
        ops.append(parent, ops.encode(f"\n{c['join_open']}\n" + "\n".join(parts) + f"\n{c['join_close']}\n"))
        ops.record("join", thread=parent.id, children=len(parts))
