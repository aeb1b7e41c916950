"""Scheduler: the event loop that runs many requests over one backend.

Each `step()`:
  1. deadlines: a request past its wall-clock deadline ends now (threads `limit`);
  2. submit every runnable thread with `input_ids` = its trie path, the protocol's
     markers as stop strings, a per-thread seed derived from the request seed, and
     `affinity_key` = request id;
  3. one `backend.step()`; new tokens are appended to the trie (never re-tokenized),
     budgets are applied, finished runs go to the protocol (markers -> spawn / join);
  4. policy hooks (`on_tokens`, `on_sample_end`, nested scopes), then requests whose
     policy is done are finalized and returned as `Result`s.

All requests share one token trie, so equal prefixes (a system prompt, a question
sampled n times) are stored once. Per-request state lives in `RequestRun`.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

from parareason.backends.base import Backend
from parareason.runtime.request import RequestSpec
from parareason.runtime.request_run import RequestRun
from parareason.runtime.result import Result
from parareason.runtime.thread import Thread
from parareason.runtime.trie import TokenTrie


class Scheduler:
    def __init__(self, backend: Backend, *, trace_sink: Callable[[dict], None] | None = None,
                 step_timeout_s: float = 0.05) -> None:
        self.backend = backend
        self.trace_sink = trace_sink
        self.step_timeout_s = step_timeout_s
        self.trie = TokenTrie()
        self._runs: dict[str, RequestRun] = {}
        self._seq_owner: dict[str, tuple[RequestRun, Thread]] = {}
        self._ready: list[Result] = []  # finished outside step() (at add / cancel)
        self.steps = 0

    # -- public API ----------------------------------------------------------------------
    def add(self, spec: RequestSpec) -> None:
        """Start a request; may be called while others run (they share backend steps)."""
        if spec.id in self._runs:
            raise ValueError(f"request id {spec.id!r} is already running")
        run = RequestRun(spec, self.backend, self.trie, self.trace_sink)
        self._runs[spec.id] = run
        run.start()
        run.after_step()
        self._collect(run, self._ready)

    def cancel(self, request_id: str, reason: str) -> None:
        run = self._runs.get(request_id)
        if run is not None:
            run.cancel(reason)
            self._collect(run, self._ready)

    def has_work(self) -> bool:
        return bool(self._runs) or bool(self._ready)

    def live_requests(self) -> list[str]:
        return list(self._runs)

    def step(self) -> list[Result]:
        """One backend step for all live requests; returns the requests finished now."""
        done, self._ready = self._ready, []
        now = time.monotonic()
        for run in list(self._runs.values()):
            run.check_deadline(now)
            self._collect(run, done)
        for run in self._runs.values():
            self._guarded(run, lambda r=run: r.submit_pending(self._seq_owner))
        if self.backend.has_work():
            for u in self.backend.step(timeout_s=self._timeout()):
                owner = self._seq_owner.pop(u.seq_id, None) if u.finished else self._seq_owner.get(u.seq_id)
                if owner is None:
                    continue
                run, thread = owner
                if run.done:
                    continue
                try:
                    run.feed.on_update(thread, u)
                except Exception as e:  # noqa: BLE001 - a protocol fault ends only its request
                    self._fail(run, e)
        else:
            for run in self._runs.values():
                run.feed.lost_sequences()
        self.steps += 1
        for run in list(self._runs.values()):
            run.after_step()
            self._collect(run, done)
        return done

    def run(self, specs: Iterable[RequestSpec], max_concurrent: int = 8) -> Iterator[Result]:
        """Run `specs` with at most `max_concurrent` requests live; yield each Result as it ends."""
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        queue = iter(specs)
        exhausted = False
        while True:
            while not exhausted and len(self._runs) < max_concurrent:
                spec = next(queue, None)
                if spec is None:
                    exhausted = True
                    break
                self.add(spec)
            if not self.has_work():
                if exhausted:
                    self.drain()
                    return
                continue
            yield from self.step()

    def drain(self, max_steps: int = 10_000) -> None:
        """Collect the final reports of aborted sequences so the backend ends idle."""
        for _ in range(max_steps):
            if self._runs or not self._seq_owner or not self.backend.has_work():
                return
            for u in self.backend.step(timeout_s=self.step_timeout_s):
                if u.finished:
                    self._seq_owner.pop(u.seq_id, None)

    # -- internals ---------------------------------------------------------------------
    def _timeout(self) -> float:
        deadlines = [r.deadline for r in self._runs.values() if r.deadline is not None]
        if not deadlines:
            return self.step_timeout_s
        return max(0.0, min(self.step_timeout_s, min(deadlines) - time.monotonic()))

    def _guarded(self, run: RequestRun, fn: Callable[[], None]) -> None:
        # A protocol fault ends its request with an error; the other requests go on.
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            self._fail(run, e)

    @staticmethod
    def _fail(run: RequestRun, e: Exception) -> None:
        run.fail(e)

    def _collect(self, run: RequestRun, out: list[Result]) -> None:
        if run.done and run.result is not None and self._runs.get(run.spec.id) is run:
            del self._runs[run.spec.id]
            out.append(run.result)
