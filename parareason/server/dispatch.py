"""The asyncio side of a request: admission, hand-off to the engine loop, events back.

`Dispatcher.open()` admits a request (or refuses it with 429 when `max_in_flight`
are already running), builds its RequestSpec off the event loop, wraps its policy in
an `ObservedPolicy` and submits it. The returned `Ticket` yields the engine's events
(live text deltas, then the Result or an error), polling the client connection in
between: a client that goes away has its request cancelled, which aborts all of its
sequences on the backend at once.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from starlette.requests import Request

from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.server.context_check import check_context
from parareason.server.engine_loop import EngineLoop, Event, Job
from parareason.server.observe import ObservedPolicy
from parareason.server.routing import Route, Router, RoutingError


T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client disconnected before its request finished."""


class RequestFailed(Exception):
    """The engine ended the request with an error (policy fault, backend failure)."""


@dataclass
class Ticket:
    request_id: str
    route: Route
    observer: ObservedPolicy
    events: asyncio.Queue[Event]
    dispatcher: "Dispatcher"
    finished: bool = False
    released: bool = False

    async def next_event(self, request: Request, wait_s: float | None = None) -> Event | None:
        """The next engine event, or None after `wait_s` without one; raises ClientGone
        if the client disconnected meanwhile."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while True:
            try:
                async with asyncio.timeout(self.dispatcher.poll_s):  # wait_for may swallow a cancel (3.11)
                    event = await self.events.get()
            except TimeoutError:
                if await request.is_disconnected():
                    raise ClientGone() from None
                if not self.dispatcher.engine.alive and self.events.empty():
                    self.finished = True
                    return ("error", "the engine loop stopped")
                if wait_s is not None and loop.time() - t0 >= wait_s:
                    return None
                continue
            if event[0] in ("done", "error"):
                self.finished = True
            return event

    async def result(self, request: Request) -> Result:
        while True:
            event = await self.next_event(request)
            assert event is not None
            kind, payload = event
            if kind == "done":
                return payload
            if kind == "error":
                raise RequestFailed(payload)

    def release(self, reason: str = "client disconnected") -> None:
        """Always called when the handler ends: frees the slot, cancels unfinished work."""
        if self.released:
            return
        self.released = True
        self.dispatcher.in_flight -= 1
        if not self.finished:
            self.dispatcher.engine.cancel(self.request_id, reason)


class Dispatcher:
    def __init__(self, engine: EngineLoop, router: Router, *, max_in_flight: int = 16, poll_s: float = 0.2) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.engine = engine
        self.router = router
        self.max_in_flight = max_in_flight
        self.poll_s = poll_s
        self.in_flight = 0  # only touched on the event loop thread: no lock needed

    def _admit(self) -> None:
        if not self.engine.alive:
            raise RoutingError("the engine loop is not running", status=503, code="engine_down")
        if self.in_flight >= self.max_in_flight:
            raise RoutingError(f"too many requests in flight (this server runs at most {self.max_in_flight} "
                               "at once); retry shortly", status=429, code="too_many_requests_in_flight")
        self.in_flight += 1  # no await between the check and this: admission is race-free

    def _spec(self, route: Route, request_id: str, prompt: str, system: str | None, param: str) -> RequestSpec:
        spec = self.router.build_spec(route, request_id, prompt, system)
        check_context(self.engine.backend, spec, param)  # before scheduling: a 400, not empty threads
        return spec

    async def open(self, route: Route, request_id: str, prompt: str, system: str | None, *, live: bool,
                   param: str = "messages") -> Ticket:
        self._admit()
        try:
            spec = await asyncio.to_thread(self._spec, route, request_id, prompt, system, param)
        except BaseException:
            self.in_flight -= 1
            raise
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def deliver(event: Event) -> None:  # engine thread -> event loop
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is closed: the server is going down
                pass

        observer = ObservedPolicy(spec.policy, live=live, on_text=lambda delta: deliver(("text", delta)),
                                  stops=route.params.stop_strings)
        spec.policy = observer
        ticket = Ticket(request_id, route, observer, events, self)
        self.engine.submit(Job(spec, deliver))
        return ticket

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the engine thread (prompt scoring), admitted like a request."""
        self._admit()
        try:
            return await asyncio.wrap_future(self.engine.call(fn))
        finally:
            self.in_flight -= 1

    def health(self) -> dict[str, Any]:
        s = self.engine.stats
        return {"in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "engine": {"alive": self.engine.alive, "live_requests": self.engine.live_requests(),
                           "steps": s.steps, "added": s.added, "finished": s.finished,
                           "cancelled": s.cancelled, "failed": s.failed, "backend_faults": s.backend_faults}}
