"""EngineLoop: one background thread owns the Scheduler and the backend.

Every in-flight HTTP request is one `Job`. Handlers (asyncio) never touch the
scheduler: they post commands (add / cancel) to a thread-safe queue. The loop
thread drains the queue, runs one `Scheduler.step()` for ALL live requests (so
threads of different requests share one backend batch: continuous batching across
requests), and hands finished results back through each job's `deliver` callback,
which the server binds to `loop.call_soon_threadsafe`.

`call(fn)` runs `fn()` on the loop thread between two steps (prompt scoring: the
backend is only ever touched from this thread) and returns a Future of its result.

Fault isolation: a policy or protocol exception ends only its request (the
scheduler guards each request); `Scheduler.add` failing fails that job only; a
backend-wide fault (`step()` raising) fails the requests in flight and the loop
keeps serving, so a restarted SGLang server is picked up again.
"""
from __future__ import annotations

import logging
import queue
from concurrent.futures import Future
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from parareason.backends.base import Backend
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler

log = logging.getLogger("parareason.server")

# What a job's `deliver` receives: ("text", str) live deltas, then exactly one of
# ("done", Result) or ("error", message).
Event = tuple[str, Any]


@dataclass
class Job:
    spec: RequestSpec
    deliver: Callable[[Event], None]
    added_at: float = field(default_factory=time.monotonic)


@dataclass
class LoopStats:
    steps: int = 0
    added: int = 0
    finished: int = 0
    cancelled: int = 0
    failed: int = 0
    backend_faults: int = 0
    last_step_at: float | None = None


class EngineLoop:
    def __init__(self, backend: Backend, *, idle_wait_s: float = 0.05,
                 trace_sink: Callable[[dict], None] | None = None) -> None:
        self.backend = backend
        self.scheduler = Scheduler(backend, trace_sink=trace_sink)
        self.stats = LoopStats()
        self.idle_wait_s = idle_wait_s
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._jobs: dict[str, Job] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parareason-engine-loop", daemon=True)

    # -- called from any thread ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Cancel what is in flight and end the thread (the backend is not closed)."""
        self._stop.set()
        self._commands.put(("wake", None))
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def submit(self, job: Job) -> None:
        self._commands.put(("add", job))

    def cancel(self, request_id: str, reason: str) -> None:
        self._commands.put(("cancel", (request_id, reason)))

    def call(self, fn: Callable[[], Any]) -> "Future[Any]":
        """Run `fn()` on the loop thread (between steps); its result or exception lands
        in the returned Future."""
        future: Future[Any] = Future()
        self._commands.put(("call", (fn, future)))
        return future

    def live_requests(self) -> int:
        return len(self._jobs)

    # -- the loop thread -------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - backend-wide fault (or a bug): fail in-flight work, keep serving
                self._backend_fault(e)
        self._shutdown()

    def _tick(self) -> None:
        self._drain(block=not self.scheduler.has_work())
        if self._stop.is_set() or not self.scheduler.has_work():
            return
        results = self.scheduler.step()
        self.stats.steps += 1
        self.stats.last_step_at = time.monotonic()
        for result in results:
            self._finish(result)

    def _drain(self, block: bool) -> None:
        try:
            cmd = self._commands.get(timeout=self.idle_wait_s) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(*cmd)
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return

    def _apply(self, kind: str, arg: Any) -> None:
        if kind == "add":
            job: Job = arg
            if self._stop.is_set():
                self._send(job, ("error", "server is shutting down"))
                return
            self._jobs[job.spec.id] = job
            self.stats.added += 1
            try:
                self.scheduler.add(job.spec)  # a request may even finish here (limits, empty policy)
            except Exception as e:  # noqa: BLE001
                self._jobs.pop(job.spec.id, None)
                self.stats.failed += 1
                self._send(job, ("error", f"cannot start request: {type(e).__name__}: {e}"))
        elif kind == "call":
            fn, future = arg
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except Exception as e:  # noqa: BLE001 - the caller gets it; the loop goes on
                future.set_exception(e)
        elif kind == "cancel":
            request_id, reason = arg
            if request_id in self._jobs:
                self.stats.cancelled += 1
                self.scheduler.cancel(request_id, reason)  # aborts its sequences on the backend now

    def _finish(self, result: Result) -> None:
        job = self._jobs.pop(result.id, None)
        if job is None:
            return
        self.stats.finished += 1
        self._send(job, ("done", result))

    def _backend_fault(self, e: Exception) -> None:
        self.stats.backend_faults += 1
        message = f"backend failure: {type(e).__name__}: {e}"
        log.error("engine loop: %s; failing %d request(s)", message, len(self._jobs))
        for request_id in self.scheduler.live_requests():
            try:
                self.scheduler.cancel(request_id, message)  # aborts their sequences on the backend
            except Exception:  # noqa: BLE001 - state may be broken; the job still gets its error
                log.exception("cancel after backend fault")
        for job in list(self._jobs.values()):
            self.stats.failed += 1
            self._send(job, ("error", message))
        self._jobs.clear()
        # A fresh scheduler: nothing half-updated survives the fault. Late reports of the
        # old sequences carry ids it does not own, and it ignores them.
        self.scheduler = Scheduler(self.backend, trace_sink=self.scheduler.trace_sink)
        time.sleep(0.1)  # a backend that keeps failing must not turn this into a hot loop

    def _shutdown(self) -> None:
        for request_id in self.scheduler.live_requests():
            self.scheduler.cancel(request_id, "server shutting down")
        for job in list(self._jobs.values()):
            self._send(job, ("error", "server is shutting down"))
        self._jobs.clear()
        while True:  # jobs added after the stop flag
            try:
                kind, arg = self._commands.get_nowait()
            except queue.Empty:
                break
            if kind == "add":
                self._send(arg, ("error", "server is shutting down"))
            elif kind == "call" and arg[1].set_running_or_notify_cancel():
                arg[1].set_exception(RuntimeError("server is shutting down"))

    @staticmethod
    def _send(job: Job, event: Event) -> None:
        try:
            job.deliver(event)
        except Exception:  # noqa: BLE001 - a gone client must never stop the loop
            log.debug("dropped an event for %s", job.spec.id, exc_info=True)
