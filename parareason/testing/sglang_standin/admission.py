"""The way into and out of the stand-in's "scheduler": dispatch window, waiting queue, abort.

Mirrors SGLang 0.5.23: `managers/tokenizer_manager.py` (`abort_request`: the rid
must be known exactly and is forwarded once, `abort_sent`; a disconnected
client aborts through the same call) and `managers/scheduler.py`
(`abort_request`: every queued or running request whose rid *starts with* the
forwarded rid; a queued one is answered "Abort in waiting queue").

A streaming client that hangs up is aborted by the response's background task,
`create_abort_task` (`managers/tokenizer_manager.py:2427-2438`): it sleeps 2 s
(`modes.disconnect_abort_delay_s`), then aborts the rid if the tokenizer manager
still holds it (not finished meanwhile). Until then the request runs on and an
`/abort_request` for it still lands. A non-streaming client's hang-up is aborted
at once here; SGLang notices it when the next output arrives, or after 4 s
waiting (`SGLANG_REQUEST_STATE_WAIT_TIMEOUT`, tokenizer_manager.py:1963-1973, 2061-2072).
"""
from __future__ import annotations

import asyncio

from parareason.backends.base import GenerationRequest
from parareason.testing.sglang_standin.state import StandinState
from parareason.testing.sglang_standin.wire import QUEUED_ABORT, LiveRequest


async def dispatch(srv: StandinState, live: LiveRequest, req: GenerationRequest) -> None:
    """Hand the request to the scheduler after the dispatch window; run it after the queue delay."""
    modes = srv.modes
    if modes.dispatch_window_s:
        await asyncio.sleep(modes.dispatch_window_s)
    if live.cancel_on_dispatch or srv.stopping.is_set():
        return
    live.dispatched = True
    waited = 0.0
    while waited < modes.queue_delay_s and not live.aborted:
        await asyncio.sleep(0.02)
        waited += 0.02
    if live.aborted:
        live.updates.put_nowait(QUEUED_ABORT)
        return
    live.running = True
    srv.commands.put(("submit", req))


def abort(srv: StandinState, rid: str, abort_all: bool = False) -> None:
    """`/abort_request` (and a client's disconnect) as the tokenizer manager forwards it."""
    if not abort_all:
        if not rid:
            return  # an empty rid would match every request: ignored
        live = srv.live.get(rid)
        if live is None or live.abort_sent:
            return  # unknown to this tokenizer manager, or already forwarded: a no-op
        live.abort_sent = True
    srv.abort_requests_forwarded.append(rid if not abort_all else "*")
    for other in list(srv.live.values()):
        # The scheduler sees only what was dispatched to it: an abort in the window is lost.
        if other.dispatched and not other.finished and not other.aborted and (abort_all or other.rid.startswith(rid)):
            other.aborted = True
            srv.aborted_rids.append(other.rid)
            if other.running:
                srv.commands.put(("abort", other.rid))


async def hung_up(srv: StandinState, live: LiveRequest) -> None:
    """A streaming client's hang-up: `create_abort_task`'s abort, after its delay."""
    if live.hung_up:
        return  # handled already (the stream's finally, then the background task)
    live.hung_up = True
    if not live.finished:
        srv.disconnected_rids.append(live.rid)
    waited, delay = 0.0, srv.modes.disconnect_abort_delay_s
    while waited < delay and not live.finished and not srv.stopping.is_set():
        _drain(live)
        await asyncio.sleep(0.02)
        waited += 0.02
    _drain(live)
    srv.live.pop(live.rid, None)
    disconnect(srv, live)


def _drain(live: LiveRequest) -> None:
    """Read what no stream reads any more: a final update means the rid left the tokenizer manager."""
    while not live.updates.empty():
        u = live.updates.get_nowait()
        if u is QUEUED_ABORT or getattr(u, "finished", False):
            live.finished = True


def disconnect(srv: StandinState, live: LiveRequest) -> None:
    """The client hung up: SGLang aborts the request through `abort_request(rid)`."""
    if live.finished or live.aborted:
        return  # ended already
    if live.rid not in srv.disconnected_rids:
        srv.disconnected_rids.append(live.rid)
    if live.abort_sent:
        return  # an earlier /abort_request set abort_sent: this abort is skipped, as on SGLang
    live.abort_sent = True
    if not live.dispatched:
        live.cancel_on_dispatch = True  # forwarded after the request itself, so it lands
        return
    live.aborted = True
    if live.running:
        srv.commands.put(("abort", live.rid))
