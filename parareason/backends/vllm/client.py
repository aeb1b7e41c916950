"""`VLLMBackend`: the runtime's `Backend` over a vLLM server's completions endpoint.

One streaming `POST /v1/completions` per sequence, its exact token ids as the prompt
(wire.py: what is sent and read). As in the SGLang client, one thread runs an asyncio loop
with one `httpx.AsyncClient`, each sequence is a task on it pushing events into a queue;
`step()` drains it on the caller's thread (nothing reported twice, nothing after `abort()`).

Faults: a refused connection, a 5xx, a dropped or stalled stream are retried with
backoff, on the next server for the sequence's affinity key, while no token of the
sequence was delivered (`max_retries`); after that, or once tokens were delivered, the
sequence ends with `finish_reason="error"` and the error recorded, so a dead server ends
a run instead of hanging it (stream.py: one attempt). `abort()` closes the stream and,
where the server was started with --enable-scale-out, posts the request's id to
`/inference/v1/abort_requests` (vllm/entrypoints/scale_out/token_in_token_out/
api_router.py): the hang-up alone did not always abort it (2 FFS runs in 14, no
'aborted' in vLLM 0.32's log: it ran on 1-2.5 s).
"""
from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from dataclasses import fields
from typing import Any, Sequence

import httpx

from parareason.backends.base import (
    FINISH_ABORT, FINISH_ERROR, FINISH_LENGTH, Backend, BackendError, GenerationRequest, SeqUpdate, Tokenizer,
)
from parareason.backends.http.failures import RequestFailure
from parareason.backends.http.routing import WorkerPool
from parareason.backends.vllm.config import VLLMConfig
from parareason.backends.vllm.startup import ABORT_ROUTE, ServerInfo, check_server, describe, metric
from parareason.backends.vllm.stream import Event, Seq, stream_attempt
from parareason.backends.vllm.wire import Chunk


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, urls: Sequence[str], tokenizer: Tokenizer, config: VLLMConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config or VLLMConfig()
        self.urls = [u.rstrip("/") for u in urls]
        if not self.urls:
            raise BackendError("the vllm backend needs at least one server URL")
        self.pool = WorkerPool(self.urls, dead_cooldown_s=self.config.dead_cooldown_s)
        self._events: queue.Queue[Event] = queue.Queue()
        self._live: dict[str, Seq] = {}
        self._aborted: list[Seq] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-client", daemon=True)
        self._thread.start()
        self._client = self._call(self._make_client(), 30)
        try:
            self.servers: list[ServerInfo] = self._call(self._startup(), self.config.wait_ready_s + 120)
        except BaseException:
            self.close()
            raise
        self._abort_routes = {s.url for s in self.servers if s.abort_route}
        self.max_model_len = min(s.max_model_len for s in self.servers)
        self.model = self.servers[0].model
        self.facts = describe(self.servers)  # what the start-up checks found (results' details)

    @property
    def context_length(self) -> int | None:
        return self.max_model_len or None  # the least of the servers' (0: none said)

    # -- the caller's side ------------------------------------------------------------------
    def submit(self, req: GenerationRequest) -> None:
        room = self.max_model_len - len(req.input_ids)
        seq = Seq(req, max_tokens=min(req.params.max_new_tokens, max(room, 0)))
        self._live[req.seq_id] = seq
        if seq.max_tokens <= 0:  # nothing fits: a clear error, not a rejected request
            reason, error = ((FINISH_LENGTH, None) if req.params.max_new_tokens <= 0 and room > 0 else
                             (FINISH_ERROR, f"context full: the prompt has {len(req.input_ids)} tokens and "
                                            f"the server's max_model_len is {self.max_model_len}"))
            self._events.put(Event(seq, Chunk(), final=True, reason=reason, error=error))
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
            seq.future.cancel()  # closes the stream
        if seq.on_server is not None and seq.on_server[0] in self._abort_routes:
            asyncio.run_coroutine_threadsafe(self._abort_on_server(*seq.on_server), self._loop)
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
        return self._call(metric(self._client, url or self.urls[0], name), 30)

    def _apply(self, ev: Event, updates: dict[str, SeqUpdate]) -> None:
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

    async def _abort_on_server(self, url: str, request_id: str) -> None:
        try:
            await self._client.post(url + ABORT_ROUTE, json={"request_ids": [request_id]}, timeout=10)
        except httpx.HTTPError:
            pass  # the stream is closed anyway

    async def _make_client(self) -> httpx.AsyncClient:
        c = self.config
        headers = {"Authorization": f"Bearer {c.api_key}"} if c.api_key else {}
        limits = httpx.Limits(max_connections=c.max_connections, max_keepalive_connections=c.max_connections)
        return httpx.AsyncClient(headers=headers, limits=limits,
                                 timeout=httpx.Timeout(30.0, connect=c.connect_timeout_s))

    async def _startup(self) -> list[ServerInfo]:
        return list(await asyncio.gather(*(check_server(self._client, u, self.tokenizer, self.config)
                                           for u in self.urls)))

    async def _run(self, seq: Seq) -> None:
        c = self.config
        deadline = time.monotonic() + c.request_timeout_s
        tried: list[str] = []
        failure: RequestFailure | None = None
        for attempt in range(c.max_retries + 1):
            url = self.pool.pick(seq.req.affinity_key or seq.req.seq_id, exclude=tried)
            try:
                state = await stream_attempt(self._client, c, seq, url, model=self.model, deadline=deadline,
                                             max_logprobs=self.servers[0].max_logprobs, events=self._events)
                self.pool.mark_alive(url)
                reason, matched, error = state.finish  # type: ignore[misc]
                self._events.put(Event(seq, Chunk(), final=True, reason=reason, matched=matched,
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
        self._events.put(Event(seq, Chunk(), final=True, reason=FINISH_ERROR, error=msg))


def load_vllm_backend(urls: Sequence[str], tokenizer: Tokenizer, **opts: Any) -> VLLMBackend:
    """Connect to one or several vLLM servers; `opts` are `VLLMConfig` fields."""
    known = {f.name for f in fields(VLLMConfig)}
    unknown = set(opts) - known
    if unknown:
        raise TypeError(f"unknown vLLM options {sorted(unknown)}; known: {sorted(known)}")
    return VLLMBackend(urls, tokenizer, VLLMConfig(**opts))
