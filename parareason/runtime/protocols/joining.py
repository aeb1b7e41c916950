"""Protocols whose threads wait on children: the parent halts, its children run, and
when the last one ends their results go into the parent's context and it resumes.

APR (spawned tasks) and ThreadWeaver (parallel blocks) share this bookkeeping; they
differ only in how children start and what the join appends.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from parareason.runtime.protocols.base import Protocol, ThreadOps
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread


class JoiningProtocol(Protocol):
    children_key: ClassVar[str]  # where a waiting parent keeps its children in `Thread.meta`

    def await_children(self, ops: ThreadOps, parent: Thread, children: list[Thread], event: str,
                       **data: Any) -> None:
        """Register the children of waiting `parent` and trace `event`; join at once when
        none is live (all refused by a limit), since no child end will trigger it."""
        parent.meta[self.children_key] = children
        ops.record(event, thread=parent.id, **data, started=sum(ch.live for ch in children))
        if not any(ch.live for ch in children):
            self._join(ops, parent)

    def on_thread_end(self, ops: ThreadOps, thread: Thread) -> None:
        parent = thread.parent
        if parent is None or parent.status != Status.WAITING:
            return
        children = parent.meta.get(self.children_key, [])
        if thread in children and not any(ch.live for ch in children):
            self._join(ops, parent)

    def _join(self, ops: ThreadOps, parent: Thread) -> None:
        self.append_results(ops, parent, parent.meta.pop(self.children_key, []))
        ops.resume(parent)

    @abstractmethod
    def append_results(self, ops: ThreadOps, parent: Thread, children: list[Thread]) -> None:
        """Append the ended children's results to `parent`'s context and trace the join."""
