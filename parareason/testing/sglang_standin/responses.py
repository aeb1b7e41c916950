"""How the stand-in answers one /generate: a stream of output objects, or one JSON.

Both read the request's updates (pushed by the engine thread) and apply the
injected faults (`faults.py`); a client that hangs up aborts its request, as on SGLang
(a streaming one after `create_abort_task`'s delay: `admission.py`).
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from fastapi.responses import JSONResponse, Response

from parareason.backends.base import GenerationRequest, SeqUpdate
from parareason.testing.sglang_standin.admission import disconnect, hung_up
from parareason.testing.sglang_standin.sampling import scale_logprobs
from parareason.testing.sglang_standin.state import StandinState
from parareason.testing.sglang_standin.wire import (
    QUEUED_ABORT,
    LiveRequest,
    error_response,
    finish_json,
    queued_abort_object,
    rejected_finish,
    sse_data,
    value_error_response,
)


class StandinDrop(Exception):
    """Raised inside a streaming body to make the server hang up mid-response."""


async def next_update(srv: StandinState, live: LiveRequest) -> SeqUpdate | object | None:
    while not srv.stopping.is_set():
        try:
            async with asyncio.timeout(0.1):  # wait_for may swallow a cancel (Python 3.11)
                return await live.updates.get()
        except TimeoutError:
            continue
    return None


async def stall(srv: StandinState) -> None:
    while not srv.stopping.is_set():
        await asyncio.sleep(0.05)


async def stream(srv: StandinState, live: LiveRequest, req: GenerationRequest) -> AsyncIterator[bytes]:
    faults = srv.faults
    drop_at = faults.drop_after_tokens if faults.drop_after_tokens is not None and faults.take("drop_next") else None
    stall_at = faults.stall_after_tokens if faults.stall_after_tokens is not None and faults.take("stall_next") else None
    pause_at = srv.modes.pause_after_tokens
    out: list[int] = []
    lps: list[float] = []
    tops: list[list[tuple[int, float]]] = []
    try:
        if stall_at == 0:
            await stall(srv)
        while True:
            u = await next_update(srv, live)
            if u is None:
                return
            if u is QUEUED_ABORT:
                live.finished = True
                yield sse_data(queued_abort_object(live, srv.incremental))
                yield b"data: [DONE]\n\n"
                return
            assert isinstance(u, SeqUpdate)
            n_before = len(out)
            _extend(out, lps, tops, u, req, srv, live)
            finish = _finish(u, out, live) if u.finished else None
            if faults.nan_after_tokens is not None and len(out) >= faults.nan_after_tokens and not u.finished:
                finish = {"type": "stop", "matched": "NaN happened"}  # schedule_batch.py: bad logits
                live.finished = True
                srv.commands.put(("abort", live.rid))
                yield sse_data(srv.chunk(live, out, lps, tops, finish, req, n_before))
                yield b"data: [DONE]\n\n"
                return
            if drop_at is not None and len(out) >= drop_at:
                if drop_at > n_before:  # stream exactly drop_at tokens, then hang up
                    del out[drop_at:], lps[drop_at:], tops[drop_at:]
                    yield sse_data(srv.chunk(live, out, lps, tops, None, req, n_before))
                raise StandinDrop(f"injected fault: dropped after {drop_at} tokens")
            if u.finished:
                live.finished = True
                srv.radix.insert(live.input_ids + out)
            yield sse_data(srv.chunk(live, out, lps, tops, finish, req, n_before))
            if pause_at is not None and n_before < pause_at <= len(out) and not u.finished:
                await asyncio.sleep(srv.modes.pause_s)  # retracted: back in the queue, no bytes
            if stall_at is not None and len(out) >= stall_at and not u.finished:
                await stall(srv)
                return
            if u.finished:
                yield b"data: [DONE]\n\n"
                return
    finally:
        if live.finished:
            srv.live.pop(live.rid, None)
        elif not live.hung_up:  # the client hung up (or a fault dropped it): SGLang's delayed abort
            task = asyncio.get_running_loop().create_task(hung_up(srv, live))
            srv.tasks.add(task)  # (the response's background task would start it too)
            task.add_done_callback(srv.tasks.discard)


async def collect(srv: StandinState, live: LiveRequest, req: GenerationRequest) -> Response:
    out: list[int] = []
    lps: list[float] = []
    tops: list[list[tuple[int, float]]] = []
    try:
        while True:
            u = await next_update(srv, live)
            if u is None:
                return error_response(503, "server shutting down")
            if u is QUEUED_ABORT:
                live.finished = True
                return JSONResponse(queued_abort_object(live, False))
            assert isinstance(u, SeqUpdate)
            _extend(out, lps, tops, u, req, srv, live)
            if u.finished:
                live.finished = True
                if live.rejection is not None:  # tokenizer_manager.py:1916-1918: raised, answered 400
                    return value_error_response(live.rejection, streaming=False)
                srv.radix.insert(live.input_ids + out)
                return JSONResponse(srv.chunk(live, out, lps, tops, finish_json(u, out, live.aborted), req, 0,
                                              whole=True))
    finally:
        srv.live.pop(live.rid, None)
        disconnect(srv, live)


def _finish(u: SeqUpdate, out: list[int], live: LiveRequest) -> dict:
    if live.rejection is not None:  # the scheduler's abort, after the stub token's prefill
        return rejected_finish(live.rejection)
    return finish_json(u, out, live.aborted)


def _extend(out: list[int], lps: list[float], tops: list, u: SeqUpdate, req: GenerationRequest,
            srv: StandinState, live: LiveRequest) -> None:
    """Append one backend update, its logprobs as the server's sampler reports them."""
    new_lps, new_tops = scale_logprobs(u, req.params, srv.modes)
    out += u.token_ids
    if live.rejection is not None:
        return  # set_finish_with_abort turned return_logprob off (schedule_batch.py:2236)
    lps += new_lps
    tops += new_tops or [[] for _ in u.token_ids]
