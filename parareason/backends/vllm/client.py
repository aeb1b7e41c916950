"""`VLLMBackend`: the runtime's `Backend` over a vLLM server's completions endpoint.

One streaming `POST /v1/completions` per sequence with the sequence's exact token ids as
the prompt (wire.py says what is sent and read). Concurrency as in the SGLang client:
one background thread runs an asyncio loop with one `httpx.AsyncClient`, each sequence
is a task on it, tasks push events into a queue and `step()` drains it on the caller's
thread, which alone touches what the caller can see (nothing is reported twice, nothing
after `abort()`).

Faults: a refused connection, a 5xx, a dropped or stalled stream are retried with
backoff, on the next server for the sequence's affinity key, while no token of the
sequence was delivered (`max_retries`); after that, or once tokens were delivered, the
sequence ends with `finish_reason="error"` and the error recorded, so a dead server ends
a run instead of hanging it. The first token has its own long deadline (a request may
wait in vLLM's queue without a byte); after it, `stall_timeout_s` of silence fails the
stream. `abort()` closes the stream, which makes vLLM abort the request.
"""
from __future__ import annotations

import asyncio
import json
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any, Sequence

import httpx

from parareason.backends.base import (
    FINISH_ABORT, FINISH_ERROR, FINISH_LENGTH, Backend, BackendError, GenerationRequest, SeqUpdate, Tokenizer,
)
from parareason.backends.http.failures import RETRYABLE_STATUS, RequestFailure
from parareason.backends.http.routing import WorkerPool
from parareason.backends.http.sse import SSEParser
from parareason.backends.vllm.config import VLLMConfig
from parareason.backends.vllm.startup import ServerInfo, check_server, describe
from parareason.backends.vllm.wire import Chunk, completion_body, decode_chunk, map_finish


@dataclass(eq=False)
class _Seq:
    req: GenerationRequest
    max_tokens: int
    delivered: int = 0  # tokens reported to the caller
    future: Any = None  # concurrent.futures.Future of its task
    aborted: bool = False


@dataclass
class _Event:
    seq: _Seq
    chunk: Chunk
    final: bool = False
    reason: str | None = None
    matched: int | str | None = None
    error: str | None = None
    usage: tuple[int, int] | None = None  # (prompt tokens, cached tokens)


@dataclass
class _Attempt:
    """What one attempt of a sequence saw."""

    tokens: int = 0
    usage: tuple[int, int] | None = None
    finish: tuple[str, int | str | None, str | None] | None = None


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, urls: Sequence[str], tokenizer: Tokenizer, config: VLLMConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config or VLLMConfig()
        self.urls = [u.rstrip("/") for u in urls]
        if not self.urls:
            raise BackendError("the vllm backend needs at least one server URL")
        self.pool = WorkerPool(self.urls, dead_cooldown_s=self.config.dead_cooldown_s)
        self._events: queue.Queue[_Event] = queue.Queue()
        self._live: dict[str, _Seq] = {}
        self._aborted: list[_Seq] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-client", daemon=True)
        self._thread.start()
        self._client = self._call(self._make_client(), 30)
        try:
            self.servers: list[ServerInfo] = self._call(self._startup(), self.config.wait_ready_s + 120)
        except BaseException:
            self.close()
            raise
        self.max_model_len = min(s.max_model_len for s in self.servers)
        self.model = self.servers[0].model
        self.facts = describe(self.servers)  # what the start-up checks found (results' details)

    @property
    def context_length(self) -> int | None:
        return self.max_model_len or None  # the least of the servers' (0: none said)

    # -- the caller's side ------------------------------------------------------------------
    def submit(self, req: GenerationRequest) -> None:
        room = self.max_model_len - len(req.input_ids)
        seq = _Seq(req, max_tokens=min(req.params.max_new_tokens, max(room, 0)))
        self._live[req.seq_id] = seq
        if seq.max_tokens <= 0:  # nothing fits: a clear error, not a rejected request
            reason, error = ((FINISH_LENGTH, None) if req.params.max_new_tokens <= 0 and room > 0 else
                             (FINISH_ERROR, f"context full: the prompt has {len(req.input_ids)} tokens and "
                                            f"the server's max_model_len is {self.max_model_len}"))
            self._events.put(_Event(seq, Chunk(), final=True, reason=reason, error=error))
            return
        seq.future = asyncio.run_coroutine_threadsafe(self._run(seq), self._loop)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates: dict[str, SeqUpdate] = {}
        for seq in self._aborted:
            updates[seq.req.seq_id] = SeqUpdate(seq.req.seq_id, finished=True, finish_reason=FINISH_ABORT)
        self._aborted.clear()
        try:
            ev = self._events.get(timeout=timeout_s) if not updates and self._live else self._events.get_nowait()
            while True:
                self._apply(ev, updates)
                ev = self._events.get_nowait()
        except queue.Empty:
            pass
        return list(updates.values())

    def abort(self, seq_id: str) -> None:
        seq = self._live.pop(seq_id, None)
        if seq is None:
            return
        seq.aborted = True
        if seq.future is not None:
            seq.future.cancel()  # closes the stream: vLLM aborts a request whose client left
        self._aborted.append(seq)

    def has_work(self) -> bool:
        return bool(self._live) or bool(self._aborted)

    def close(self) -> None:
        if not self._loop.is_running():
            return
        for seq in list(self._live.values()):
            if seq.future is not None:
                seq.future.cancel()
        self._live.clear()
        try:
            self._call(self._shutdown(), 10)
        except Exception:  # noqa: BLE001 - closing a broken connection pool
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def server_metric(self, name: str, url: str | None = None) -> float | None:
        """One Prometheus metric of a server (e.g. vllm:num_requests_running), for checks."""
        from parareason.backends.vllm.startup import metric

        return self._call(metric(self._client, url or self.urls[0], name), 30)

    def _apply(self, ev: _Event, updates: dict[str, SeqUpdate]) -> None:
        seq = ev.seq
        if seq.aborted or self._live.get(seq.req.seq_id) is not seq:
            return  # after abort() nothing more of it is reported
        u = updates.setdefault(seq.req.seq_id, SeqUpdate(seq.req.seq_id))
        c = ev.chunk
        u.token_ids += c.token_ids
        u.logprobs += c.logprobs
        if seq.req.params.top_logprobs > 0:
            u.top_logprobs = (u.top_logprobs or []) + (c.top_logprobs or [[] for _ in c.token_ids])
        seq.delivered += len(c.token_ids)
        if ev.final:
            u.finished, u.finish_reason, u.matched_stop, u.error = True, ev.reason, ev.matched, ev.error
            prompt = len(seq.req.input_ids)
            cached = min(ev.usage[1], prompt) if ev.usage else 0
            u.prompt_tokens, u.cached_tokens, u.prefill_computed_tokens = prompt, cached, prompt - cached
            del self._live[seq.req.seq_id]

    # -- the loop's side --------------------------------------------------------------------
    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _shutdown(self) -> None:
        """Cancel every stream task and wait for it, then close the connection pool (a task
        left pending when the loop stops is destroyed mid-stream, with a warning)."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if getattr(self, "_client", None) is not None:
            await self._client.aclose()
        await asyncio.get_running_loop().shutdown_asyncgens()  # httpx's stream generators, finalized here

    async def _make_client(self) -> httpx.AsyncClient:
        c = self.config
        headers = {"Authorization": f"Bearer {c.api_key}"} if c.api_key else {}
        limits = httpx.Limits(max_connections=c.max_connections, max_keepalive_connections=c.max_connections)
        return httpx.AsyncClient(headers=headers, limits=limits,
                                 timeout=httpx.Timeout(30.0, connect=c.connect_timeout_s))

    async def _startup(self) -> list[ServerInfo]:
        return list(await asyncio.gather(*(check_server(self._client, u, self.tokenizer, self.config)
                                           for u in self.urls)))

    async def _run(self, seq: _Seq) -> None:
        c = self.config
        deadline = time.monotonic() + c.request_timeout_s
        tried: list[str] = []
        failure: RequestFailure | None = None
        for attempt in range(c.max_retries + 1):
            url = self.pool.pick(seq.req.affinity_key or seq.req.seq_id, exclude=tried)
            try:
                state = await self._attempt(seq, url, deadline)
                self.pool.mark_alive(url)
                reason, matched, error = state.finish  # type: ignore[misc]
                self._events.put(_Event(seq, Chunk(), final=True, reason=reason, matched=matched,
                                        error=error, usage=state.usage))
                return
            except asyncio.CancelledError:
                raise  # abort() or close(): the caller already knows
            except Exception as e:  # noqa: BLE001 - never leave a sequence unfinished
                if not isinstance(e, RequestFailure):
                    e = RequestFailure("protocol", f"{type(e).__name__}: {e}")
                failure = e
                if e.worker_down:
                    self.pool.mark_dead(url)
                tried.append(url)
                if seq.delivered or not e.retryable or attempt == c.max_retries or time.monotonic() > deadline:
                    break
                await asyncio.sleep(min(c.backoff_max_s, c.backoff_base_s * 2 ** attempt) * (0.5 + random.random()))
        msg = f"vLLM request failed after {len(tried)} attempt(s): {failure}"
        self._events.put(_Event(seq, Chunk(), final=True, reason=FINISH_ERROR, error=msg))

    async def _attempt(self, seq: _Seq, url: str, deadline: float) -> _Attempt:
        c = self.config
        rid = f"{seq.req.seq_id}-{uuid.uuid4().hex[:8]}"
        body = completion_body(seq.req, model=self.model, request_id=rid, max_tokens=seq.max_tokens,
                               max_logprobs=self.servers[0].max_logprobs)
        state = _Attempt()
        try:
            async with self._client.stream("POST", url + "/v1/completions", json=body,
                                           timeout=httpx.Timeout(None, connect=c.connect_timeout_s)) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread()).decode("utf-8", "replace")
                    raise RequestFailure("status", f"HTTP {resp.status_code}: {text[:300]}", resp.status_code)
                texts = resp.aiter_text()
                try:
                    await self._read(seq, texts, state, deadline)
                finally:
                    await texts.aclose()  # finalize now, not in a GC hook after the loop stopped
        except httpx.ConnectError as e:
            raise RequestFailure("connect", f"{url}: {e}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise RequestFailure("dropped", f"{url}: stream broke ({type(e).__name__}: {e})") from None
        if state.finish is None:
            raise RequestFailure("dropped", f"{url}: stream ended without a finish reason")
        return state

    async def _read(self, seq: _Seq, texts: Any, state: _Attempt, deadline: float) -> None:
        c = self.config
        parser = SSEParser()
        top_k = seq.req.params.top_logprobs
        while True:
            wait = c.first_token_timeout_s if state.tokens == 0 else c.stall_timeout_s
            wait = min(wait, max(0.0, deadline - time.monotonic()))
            try:
                text = await asyncio.wait_for(texts.__anext__(), timeout=wait)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                phase = "the first token" if state.tokens == 0 else "the next token"
                raise RequestFailure("stall", f"no byte for {wait:.0f}s waiting for {phase}") from None
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
                    self._events.put(_Event(seq, chunk))
                if chunk.finish_reason:
                    state.finish = map_finish(chunk.finish_reason, chunk.stop_reason, seq.req.params.stop_token_ids)


def load_vllm_backend(urls: Sequence[str], tokenizer: Tokenizer, **opts: Any) -> VLLMBackend:
    """Connect to one or several vLLM servers; `opts` are `VLLMConfig` fields."""
    known = {f.name for f in fields(VLLMConfig)}
    unknown = set(opts) - known
    if unknown:
        raise TypeError(f"unknown vLLM options {sorted(unknown)}; known: {sorted(known)}")
    return VLLMBackend(urls, tokenizer, VLLMConfig(**opts))
