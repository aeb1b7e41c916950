"""ThreadTable: one request's threads on the shared token trie, under its limits.

It implements `ThreadOps` for protocols, so every thread is created, waits, resumes and
ends here, and every limit on threads is applied here: live and total thread counts,
spawn depth, children per spawn, spawns per thread, and each run's token cap
(`run_cap`). A thread a limit forbids is still created, already ended with status
`limit` and reason `limit:<name>`, so the protocol can report it. When a total limit
(spawns per thread, threads per request) refuses a thread's children, that thread ends at
its join (`resume`) with the same reason: it would only spawn again. A sample ends when its
threads have (`close_sample_if_done`); ended samples queue in `ended_samples` for the
policy hooks.

Refused threads are kept (listed in `threads`, hence in the result) only up to
`KEPT_REFUSED`, plus refused roots (a few per sample); the rest are counted by reason in
`omitted` (a spawn bomb refuses tens of thousands: the row would grow without bound).
The protocol still gets every refused Thread object; it holds it until the join.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from parareason.backends.base import Backend, Tokenizer
from parareason.runtime.limits import Limits, limit_reason
from parareason.runtime.protocols.base import ThreadOps
from parareason.runtime.sample import Sample
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread
from parareason.runtime.trace import Trace
from parareason.runtime.trie import TokenTrie

_END_EVENT = {Status.FINISHED: "finish", Status.PRUNED: "prune", Status.CANCELLED: "cancel",
              Status.FAILED: "fail", Status.LIMIT: "limit"}
KEPT_REFUSED = 32  # refused threads listed per request; beyond it they are only counted


class ThreadTable(ThreadOps):
    def __init__(self, limits: Limits, trie: TokenTrie, backend: Backend, tokenizer: Tokenizer,
                 trace: Trace) -> None:
        self.limits = limits
        self.trie = trie
        self.backend = backend
        self.tokenizer = tokenizer
        self.trace = trace
        self.threads: list[Thread] = []  # every thread run, and the refused ones kept
        self.kept_refused = 0  # refused threads with a parent in `threads`
        self.omitted: Counter[str] = Counter()  # refused threads not kept, by reason
        self.pending: list[Thread] = []  # waiting for a backend run
        self.live = 0  # threads not yet ended
        self.admitted = 0  # threads placed in the trie (run), in total
        self.ended_samples: list[Sample] = []  # closed since the policy hooks last ran
        self.closed = False  # the request is done: no new thread

    # -- ThreadOps ---------------------------------------------------------------------
    def new_thread(self, sample: Any, ids: Sequence[int], *, parent: Thread | None = None, role: str,
                   stop_strings: tuple[str, ...] = (), child_index: int = 0) -> Thread:
        t = self._make_thread(sample, parent, role, stop_strings)
        refused = self._creation_limit(t, child_index)
        self.trace.emit("spawn" if parent else "thread", thread=t.id, parent=parent.id if parent else None,
                        role=role, context=len(ids), depth=t.depth)
        if refused:
            return self._refuse(t, refused)
        t.node = self.trie.acquire(ids)
        self._admit(t)
        return t

    def fork(self, parent: Thread, extra_ids: Sequence[int], *, role: str,
             stop_strings: tuple[str, ...] = (), child_index: int = 0) -> Thread:
        t = self._make_thread(parent.sample, parent, role, stop_strings)
        refused = self._creation_limit(t, child_index)
        self.trace.emit("fork", thread=t.id, parent=parent.id, role=role, depth=t.depth,
                        at=parent.node.end if parent.node else None, extra=len(extra_ids))
        if refused or parent.node is None:
            return self._refuse(t, refused or "parent has no context")
        t.node = self.trie.fork(parent.node)
        if extra_ids:
            t.node = self.trie.append(t.node, extra_ids)
            t.own_ids.extend(extra_ids)
        self._admit(t)
        return t

    def append(self, thread: Thread, ids: Sequence[int]) -> None:
        if not ids:
            return
        if thread.node is None:
            raise RuntimeError(f"append to ended thread {thread.id}")
        thread.node = self.trie.append(thread.node, ids)
        thread.own_ids.extend(ids)
        self.trace.emit("extend", thread=thread.id, tokens=len(ids), context=thread.node.end)

    def wait(self, thread: Thread) -> None:
        thread.set_status(Status.WAITING)
        thread.spawns += 1
        self.trace.emit("wait", thread=thread.id, children=sum(1 for c in thread.children if c.live))

    def resume(self, thread: Thread) -> None:
        if thread.spawn_refused is not None:
            # it spawned past a total limit (those children never ran): it ends here, or it
            # would go on spawning children that are refused again
            self.end_thread(thread, Status.LIMIT, limit_reason(thread.spawn_refused))
            return
        thread.set_status(Status.PENDING)
        self.pending.append(thread)
        self.trace.emit("resume", thread=thread.id)

    def finish(self, thread: Thread, reason: str, status: Status = Status.FINISHED) -> None:
        self.end_thread(thread, status, reason)

    def record(self, kind: str, **data: Any) -> None:
        self.trace.emit("protocol", kind=kind, **data)

    # -- creation under the limits -------------------------------------------------------
    def full(self) -> str | None:
        """The thread-count limit that forbids one more thread now, if any."""
        lim = self.limits
        if lim.max_live_threads is not None and self.live >= lim.max_live_threads:
            return "max_live_threads"
        if lim.max_threads is not None and self.admitted >= lim.max_threads:
            return "max_threads"
        return None

    def _make_thread(self, sample: Sample, parent: Thread | None, role: str, stop_strings: tuple[str, ...]) -> Thread:
        t = Thread(f"{sample.id}.t{sample.threads_made}", sample, parent, node=None,
                   depth=parent.depth + 1 if parent else 0, role=role, stop_strings=stop_strings)
        sample.threads_made += 1
        sample.threads.append(t)  # `_refuse` takes it out again if it is not kept
        self.threads.append(t)
        return t

    def _creation_limit(self, t: Thread, child_index: int) -> str | None:
        lim, parent = self.limits, t.parent
        if parent is not None:
            total = self._total_limit(parent)
            if total is not None:
                parent.spawn_refused = total
                return total
            if lim.max_spawn_depth is not None and t.depth > lim.max_spawn_depth:
                return "max_spawn_depth"
            if lim.max_children_per_spawn is not None and child_index >= lim.max_children_per_spawn:
                return "max_children_per_spawn"
        full = self.full()
        if full is not None:
            return full
        if t.sample.scope.budget_left() == 0:
            return t.sample.scope.bounding_budget_name()
        if self.closed:
            return "request_done"
        return None

    def _total_limit(self, parent: Thread) -> str | None:
        """The total limit (not a momentary one) that forbids `parent` another child."""
        lim = self.limits
        if lim.max_spawns_per_thread is not None and parent.spawns > lim.max_spawns_per_thread:
            return "max_spawns_per_thread"
        if lim.max_threads is not None and self.admitted >= lim.max_threads:
            return "max_threads"
        return None

    def _refuse(self, t: Thread, name: str) -> Thread:
        # Never placed in the trie and never live: ends at once and is reported.
        t.set_status(Status.LIMIT, limit_reason(name))
        self.trace.emit("limit", thread=t.id, status=Status.LIMIT, reason=t.reason, tokens=0)
        if t.parent is None or self.kept_refused < KEPT_REFUSED:
            # roots (a sample's first thread, parathinker's paths: a few per sample) always
            # stay: a sample's end reason and the statistics' samples are read from them
            self.kept_refused += t.parent is not None
        else:  # `_make_thread` (and Thread, to its parent's children) appended it last
            t.sample.threads.pop()
            self.threads.pop()
            t.parent.children.pop()
            self.omitted[t.reason] += 1
        return t

    def _admit(self, t: Thread) -> None:
        self.live += 1
        self.admitted += 1
        self.pending.append(t)

    def take_pending(self) -> list[Thread]:
        pending, self.pending = self.pending, []
        return pending

    # -- each run's token cap ------------------------------------------------------------
    def run_cap(self, t: Thread) -> tuple[int, str]:
        """Tokens the thread may still generate, and the name of the budget that binds.

        On ties a limit's name wins over the sampling cap (hot path: no allocations)."""
        gen = len(t.gen_ids)
        cap, name = t.sample.params.max_new_tokens - gen, "max_new_tokens"
        per_thread = self.limits.tokens_per_thread
        if per_thread is not None and per_thread - gen <= cap:
            cap, name = per_thread - gen, "tokens_per_thread"
        left = t.sample.scope.budget_left()
        if left is not None and left <= cap:
            cap, name = left, t.sample.scope.bounding_budget_name()
        return cap, name

    def end_at_cap(self, t: Thread, cap_name: str) -> None:
        if cap_name == "max_new_tokens":
            self.end_thread(t, Status.FINISHED, "length")
        else:
            self.end_thread(t, Status.LIMIT, limit_reason(cap_name))

    # -- ends ----------------------------------------------------------------------------
    def end_thread(self, t: Thread, status: Status, reason: str | None, *, notify: bool = True) -> None:
        """End `t` after cancelling its live subtree (deepest first); then tell the protocol
        and close the sample if that was its last thread. `notify=False`: the caller ends
        the whole sample itself (`abort_sample`)."""
        if not t.live:
            return
        for d in sorted((d for d in t.descendants() if d.live), key=lambda d: -d.depth):
            self._end_one(d, Status.CANCELLED, f"cancelled: ancestor {t.id} {status}")
        self._end_one(t, status, reason)
        sample = t.sample
        if notify and sample.live:
            sample.protocol.on_thread_end(self, t)
            self.close_sample_if_done(sample)

    def _end_one(self, t: Thread, status: Status, reason: str | None) -> None:
        if t.status == Status.RUNNING and t.seq_id is not None:
            self.backend.abort(t.seq_id)  # its final (abort) report is dropped by the scheduler
        t.seq_id = None
        t.set_status(status, reason)
        if t.node is not None:
            self.trie.release(t.node)
            t.node = None
        self.live -= 1
        if t.own_ids:
            from parareason.grading import final_answer

            # a thread cut by its token cap has no final answer unless it stated one
            # (its last number is mid-reasoning), so it cannot vote with a stray number
            t.answer = final_answer(self.tokenizer.decode(t.own_ids), cut_by_cap=reason == "length")
        self.trace.emit(_END_EVENT[t.status], thread=t.id, status=t.status, reason=reason, tokens=t.generated)

    def end_live(self, status: Status, reason: str) -> None:
        """End every thread still live (those of samples closed earlier: none should be)."""
        for t in self.threads:
            if t.live:
                self.end_thread(t, status, reason, notify=False)

    def abort_sample(self, sample: Sample, status: Status, reason: str) -> None:
        """End a live sample and its threads with `status` (it ends once, with that status)."""
        if not sample.live:
            return
        for t in list(sample.threads):
            if t.live:
                self.end_thread(t, status, reason, notify=False)
        self.close_sample(sample, status, reason)

    def close_sample_if_done(self, sample: Sample) -> None:
        end = sample.end_by_threads() if sample.live else None
        if end is not None:
            self.close_sample(sample, *end)

    def close_sample(self, sample: Sample, status: Status, reason: str | None) -> None:
        sample.close(status, reason)
        self.ended_samples.append(sample)
        self.trace.emit("sample_end", sample=sample.id, status=status, reason=reason,
                        tokens=sample.generated_tokens, answer=sample.answer)
