"""One sequence's attempt over vLLM's streaming completions endpoint, and the state the
client keeps per sequence (client.py runs these on its event loop).

The first token has its own long deadline (a request may wait in vLLM's queue without a
byte); after it, `stall_timeout_s` of silence fails the stream. A 5xx chunk inside the
stream is a retryable failure like a 5xx before it.
"""
from __future__ import annotations

import asyncio
import json
import queue
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from parareason.backends.base import GenerationRequest
from parareason.backends.http.failures import RETRYABLE_STATUS, RequestFailure
from parareason.backends.http.sse import SSEParser
from parareason.backends.vllm.config import VLLMConfig
from parareason.backends.vllm.wire import Chunk, completion_body, decode_chunk, map_finish


@dataclass(eq=False)
class Seq:
    req: GenerationRequest
    max_tokens: int
    delivered: int = 0  # tokens reported to the caller
    future: Any = None  # concurrent.futures.Future of its task
    aborted: bool = False
    on_server: tuple[str, str] | None = None  # (url, vLLM's request id) of the attempt streaming


@dataclass
class Event:
    seq: Seq
    chunk: Chunk
    final: bool = False
    reason: str | None = None
    matched: int | str | None = None
    error: str | None = None
    usage: tuple[int, int] | None = None  # (prompt tokens, cached tokens)


@dataclass
class Attempt:
    """What one attempt of a sequence saw."""

    tokens: int = 0
    usage: tuple[int, int] | None = None
    finish: tuple[str, int | str | None, str | None] | None = None


async def stream_attempt(client: httpx.AsyncClient, c: VLLMConfig, seq: Seq, url: str, *, model: str,
                         max_logprobs: int, deadline: float, events: queue.Queue[Event]) -> Attempt:
    """One streaming POST /v1/completions of `seq` to `url`: its tokens go to `events` as they
    come; returns how it finished, or raises RequestFailure."""
    rid = f"{seq.req.seq_id}-{uuid.uuid4().hex[:8]}"
    body = completion_body(seq.req, model=model, request_id=rid, max_tokens=seq.max_tokens,
                           max_logprobs=max_logprobs)
    state = Attempt()
    seq.on_server = (url, f"cmpl-{rid}-0")  # completion serving.py: cmpl-<request_id>-<prompt index>
    try:
        async with client.stream("POST", url + "/v1/completions", json=body,
                                 timeout=httpx.Timeout(None, connect=c.connect_timeout_s)) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                raise RequestFailure("status", f"HTTP {resp.status_code}: {text[:300]}", resp.status_code)
            texts = resp.aiter_text()
            try:
                await _read(c, seq, texts, state, deadline, events)
            finally:
                await texts.aclose()  # finalize now, not in a GC hook after the loop stopped
    except httpx.ConnectError as e:
        raise RequestFailure("connect", f"{url}: {e}") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        raise RequestFailure("dropped", f"{url}: stream broke ({type(e).__name__}: {e})") from None
    if state.finish is None:
        raise RequestFailure("dropped", f"{url}: stream ended without a finish reason")
    return state


async def _read(c: VLLMConfig, seq: Seq, texts: Any, state: Attempt, deadline: float,
                events: queue.Queue[Event]) -> None:
    parser = SSEParser()
    top_k = seq.req.params.top_logprobs
    while True:
        wait = c.first_token_timeout_s if state.tokens == 0 else c.stall_timeout_s
        wait = min(wait, max(0.0, deadline - time.monotonic()))
        try:
            # not wait_for: on 3.11 it swallows an abort() that lands as a chunk arrives
            async with asyncio.timeout(wait):
                text = await texts.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            phase = "the first token" if state.tokens == 0 else "the next token"
            raise RequestFailure("stall", f"no byte for {wait:.0f}s waiting for {phase}") from None
        if seq.aborted:  # abort() was called: end the stream even if a cancel was lost
            raise asyncio.CancelledError()
        for payload in parser.feed(text):
            if payload.strip() == "[DONE]":
                return
            try:
                chunk = decode_chunk(json.loads(payload), top_k)
            except (ValueError, TypeError) as e:
                raise RequestFailure("protocol", f"unreadable chunk {payload[:200]!r}: {e}") from None
            if chunk.error:  # a 5xx in the stream is retried like one before it (if no token came)
                if chunk.error_code in RETRYABLE_STATUS:
                    raise RequestFailure("status", f"HTTP {chunk.error_code} in the stream: {chunk.error}",
                                         chunk.error_code)
                raise RequestFailure("server", chunk.error)
            if chunk.prompt_tokens is not None:
                state.usage = (chunk.prompt_tokens, chunk.cached_tokens or 0)
            if chunk.token_ids:
                state.tokens += len(chunk.token_ids)
                events.put(Event(seq, chunk))
            if chunk.finish_reason:
                state.finish = map_finish(chunk.finish_reason, chunk.stop_reason, seq.req.params.stop_token_ids)
