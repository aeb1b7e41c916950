"""Thread: one sampled continuation, a path in the token trie.

Lifecycle (every transition is checked; an illegal one raises):

    pending -> running -> (waiting <-> running) -> finished | pruned | cancelled | failed | limit

`pending` = created, not yet on the backend; `running` = a backend sequence extends
it; `waiting` = its children run (spawn / parallel block) and it resumes after the
join. Every end carries a reason string. Ending a thread first cancels every live
descendant (see `ThreadTable.end_thread`), so a child always ends before its parent.
"""
from __future__ import annotations

from typing import Any

from parareason.runtime.status import END_STATES, LIVE_STATES, Status
from parareason.runtime.trie import TrieNode

__all__ = ["END_STATES", "LIVE_STATES", "IllegalTransition", "Status", "Thread"]

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING}) | END_STATES,
    # -> pending: re-submit after an in-place extend
    Status.RUNNING: frozenset({Status.WAITING, Status.PENDING}) | END_STATES,
    Status.WAITING: frozenset({Status.PENDING}) | END_STATES,  # -> pending: resumed after join
}


class IllegalTransition(RuntimeError):
    pass


class Thread:
    """Runtime state of one thread. Protocols keep their own notes in `meta`."""

    # `sample` is the owning runtime.sample.Sample; typed Any as protocols see it
    # (sample.py builds on this module, so importing it here would be a cycle).
    def __init__(self, thread_id: str, sample: Any, parent: "Thread | None", *,
                 node: TrieNode | None, depth: int, role: str, stop_strings: tuple[str, ...] = ()) -> None:
        self.id = thread_id
        self.sample = sample
        self.parent = parent
        self.children: list[Thread] = []
        self.node = node  # tail in the trie; None once released (or never placed)
        self.depth = depth  # spawn depth: root threads 0
        self.role = role  # protocol's label: root, child, path, summary, ...
        self.stop_strings = stop_strings
        self.status = Status.PENDING
        self.reason: str | None = None
        self.own_ids: list[int] = []  # this thread's part of its context: generated + runtime-inserted
        self.gen_ids: list[int] = []  # model-generated tokens only (aligned with logprobs)
        self.logprobs: list[float] = []
        self.top_logprobs: list[list[tuple[int, float]]] | None = None
        self.run_start = 0  # index into own_ids where the current backend run began
        self.runs = 0  # backend sequences submitted so far
        self.spawns = 0  # times it waited on children (spawn / parallel block)
        self.spawn_refused: str | None = None  # a total limit refused its children: it ends at the join
        self.seq_id: str | None = None  # current backend sequence
        self.cap_name: str | None = None  # which budget bounded the current run's max_new_tokens
        self.cap_at = 0  # generated count at which that budget is reached
        self.answer: str | None = None
        self.meta: dict[str, Any] = {}
        if parent is not None:
            parent.children.append(self)

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATES

    @property
    def generated(self) -> int:
        return len(self.gen_ids)

    def set_status(self, status: Status | str, reason: str | None = None) -> None:
        if status not in _ALLOWED.get(self.status, frozenset()):
            raise IllegalTransition(f"thread {self.id}: {self.status} -> {status} ({reason})")
        self.status = Status(status)
        if reason is not None or status in END_STATES:
            self.reason = reason

    def descendants(self) -> list["Thread"]:
        out, stack = [], list(self.children)
        while stack:
            t = stack.pop()
            out.append(t)
            stack.extend(t.children)
        return out

    def run_ids(self) -> list[int]:
        """Tokens of the current (or last) backend run: what markers are parsed from."""
        return self.own_ids[self.run_start:]

    def __repr__(self) -> str:
        return f"Thread({self.id}, {self.status}, gen={self.generated})"
