"""How long the client waits for the next bytes of a stream, and when silence is a failure.

SGLang 0.5.23 sends nothing for a request that waits in the scheduler's queue
or was retracted back to it (`managers/scheduler.py`); its stream resumes when
the request runs again. So the first chunk gets its own, long
`first_token_timeout_s` (then the request is resent), and after it a silence
longer than `stall_timeout_s` fails the sequence only if the worker's `/health`
fails too (`entrypoints/http_server.py`: 200 once the scheduler answers). A
healthy worker has only paused the request: the client keeps waiting, bounded
by `request_timeout_s`, and never fails a sequence with tokens over a pause.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable

import httpx

from parareason.backends.sglang.config import SGLangConfig, http_timeout
from parareason.backends.sglang.errors import RequestFailure

log = logging.getLogger(__name__)


async def worker_health(client: httpx.AsyncClient, config: SGLangConfig, url: str) -> str | None:
    """None if `url`'s /health answers 200, else what went wrong."""
    try:
        r = await client.get(f"{url}/health", timeout=http_timeout(config, config.health_timeout_s))
    except httpx.HTTPError as e:
        return f"cannot connect: {e!r}"
    return None if r.status_code == 200 else f"/health answered HTTP {r.status_code}"


async def next_text(client: httpx.AsyncClient, config: SGLangConfig, url: str, texts: AsyncIterator[str],
                    started: Callable[[], bool]) -> str | None:
    """The next piece of the stream (None at its end); `started()`: a chunk arrived already."""
    nxt = asyncio.ensure_future(texts.__anext__())
    try:
        while True:
            first = not started()
            limit = config.first_token_timeout_s if first else config.stall_timeout_s
            done, _ = await asyncio.wait({nxt}, timeout=limit)
            if done:
                try:
                    return nxt.result()
                except StopAsyncIteration:
                    return None
            if first:
                raise RequestFailure("stall", f"no first token within first_token_timeout_s="
                                              f"{config.first_token_timeout_s} (queued on the server?)")
            problem = await worker_health(client, config, url)
            if problem is not None:
                raise RequestFailure("stall", f"no bytes for stall_timeout_s={config.stall_timeout_s}, "
                                              f"and the worker's {problem}")
            log.info("%s: no bytes for %ss on a healthy worker (queued or retracted); waiting on",
                     url, config.stall_timeout_s)
    finally:
        if not nxt.done():
            nxt.cancel()
            await asyncio.wait({nxt})
