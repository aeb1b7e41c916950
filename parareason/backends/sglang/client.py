"""`SGLangBackend`: the runtime's `Backend` over SGLang's native HTTP API.

One streaming `POST /generate` per sequence (`sequence.py`, body from
`request_body.py`), always with `input_ids` (the thread's exact trie path) so
siblings hit the server's radix cache; `startup.py` checks the workers first
and `facts` says what it found (logprob scaling, seeds, context length) for a
run's settings. This module is the caller-side queue and the event loop that
runs the streams.

Concurrency: one background thread runs an asyncio event loop with a single
`httpx.AsyncClient`; every sequence is one task on it. Hundreds of open streams
then cost one OS thread instead of one each (this machine has 2 cores, and
the scheduler calls `step()` from its own thread). Tasks push events into a
thread-safe queue; `step()` drains it. All bookkeeping the caller can see
(which sequences are live, what was reported) is touched only by the caller's
thread, so nothing is reported twice and nothing after `abort()`.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import fields
from typing import Any, Sequence

import httpx

from parareason.backends.base import (
    FINISH_ABORT,
    FINISH_ERROR,
    Backend,
    BackendError,
    GenerationRequest,
    SeqUpdate,
    Tokenizer,
)
from parareason.backends.sglang.config import SGLangConfig, http_timeout, normalize_urls
from parareason.backends.http.routing import WorkerPool
from parareason.backends.sglang.sequence import FinishEvent, Seq, SequenceStreams
from parareason.backends.sglang.server_facts import ServerFacts
from parareason.backends.sglang.startup import StartupChecks

log = logging.getLogger(__name__)


class SGLangBackend(Backend):
    name = "sglang"

    def __init__(
        self,
        urls: str | Sequence[str],
        tokenizer: Tokenizer,
        config: SGLangConfig | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config or SGLangConfig()
        self.urls = normalize_urls(urls)
        self.pool = WorkerPool(self.urls, dead_cooldown_s=self.config.dead_cooldown_s)
        abort_urls = normalize_urls(self.config.abort_urls) if self.config.abort_urls else []
        self.model_info: dict[str, Any] = {}
        self.server_facts = ServerFacts()
        self._seqs: dict[str, Seq] = {}
        self._events: queue.Queue[tuple[Seq, Any]] = queue.Queue()
        self._abort_reports: list[Seq] = []
        self._tasks: set[asyncio.Task] = set()  # (loop) every task we started, until done
        self._active: set[Seq] = set()  # (loop) sequences whose stream task still runs
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sglang-client", daemon=True)
        self._thread.start()
        self._client: httpx.AsyncClient = self._call(self._make_client(), timeout=10)
        self._streams = SequenceStreams(self._client, self.config, self.pool, abort_urls,
                                        emit=self._emit, spawn=self._spawn)
        try:
            budget = self.config.wait_ready_s + self.config.health_timeout_s + 60
            checks = StartupChecks(self._client, self.config, tokenizer)
            self.model_info, self.server_facts = self._call(checks.run(self.urls, self.pool), timeout=budget)
        except BackendError:
            self.close()
            raise
        except (httpx.HTTPError, ValueError, KeyError, TypeError, TimeoutError) as e:
            self.close()
            raise BackendError(f"SGLang start-up check failed for {self.urls}: {type(e).__name__}: {e}") from e
        except BaseException:
            self.close()
            raise
        self._streams.facts = self.server_facts
        if self.server_facts.router_workers and not abort_urls:
            # A router does not forward /abort_request: send aborts to the workers it lists.
            self._streams.abort_urls = list(self.server_facts.router_workers)
        # What the start-up checks found, for a run's settings and results (see docs/sglang.md).
        self.facts: dict[str, Any] = self.server_facts.describe()

    @property
    def context_length(self) -> int | None:
        return self.server_facts.context_length  # /server_info's, or the configured one

    # ------------------------------------------------------------------ caller side

    def submit(self, req: GenerationRequest) -> None:
        if self._closed:
            raise BackendError("SGLangBackend is closed")
        old = self._seqs.get(req.seq_id)
        if old is not None and not old.reported_finished:
            raise ValueError(f"sequence {req.seq_id!r} is already running")
        seq = Seq(req)
        self._seqs[req.seq_id] = seq
        if not req.input_ids:
            self._events.put((seq, FinishEvent(FINISH_ERROR, error="empty input_ids")))
            return
        self._loop.call_soon_threadsafe(self._start_task, seq)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates: dict[str, SeqUpdate] = {}
        for seq in self._abort_reports:
            self._finish(seq, updates, FinishEvent(FINISH_ABORT))
        self._abort_reports.clear()
        if not updates and self.has_work():
            try:
                self._apply(*self._events.get(timeout=max(0.0, timeout_s)), updates)
            except queue.Empty:
                pass
        while True:
            try:
                self._apply(*self._events.get_nowait(), updates)
            except queue.Empty:
                break
        return list(updates.values())

    def abort(self, seq_id: str) -> None:
        seq = self._seqs.get(seq_id)
        if seq is None or seq.reported_finished or seq.aborted:
            return
        seq.aborted = True
        self._abort_reports.append(seq)
        if not self._closed:
            self._loop.call_soon_threadsafe(self._start_abort, seq)

    def has_work(self) -> bool:
        return bool(self._seqs)  # a sequence leaves _seqs when its finish is reported

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop.is_running():
            try:
                self._call(self._shutdown(), timeout=self.config.abort_drain_s + 5)
            except Exception as e:  # noqa: BLE001 - closing must not raise
                log.warning("sglang client shutdown: %s", e)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def _apply(self, seq: Seq, ev: Any, updates: dict[str, SeqUpdate]) -> None:
        if self._seqs.get(seq.req.seq_id) is not seq or seq.reported_finished:
            return  # a late event for an aborted/finished (or replaced) sequence
        if isinstance(ev, FinishEvent):
            self._finish(seq, updates, ev)
            return
        # (An aborted sequence never gets here: step() reports its abort, removing it
        # from _seqs, before it reads any queued event.)
        u = self._update(seq, updates)
        if ev.prompt_tokens is not None and not seq.accounted:
            seq.accounted = True
            u.prompt_tokens = ev.prompt_tokens
            u.cached_tokens = min(ev.cached_tokens or 0, ev.prompt_tokens)
            u.prefill_computed_tokens = ev.prompt_tokens - u.cached_tokens
        if ev.token_ids:
            u.token_ids.extend(ev.token_ids)
            u.logprobs.extend(ev.logprobs)
            if u.top_logprobs is not None:
                tops = ev.top_logprobs or [[] for _ in ev.token_ids]
                u.top_logprobs.extend(tops[: len(ev.token_ids)])

    def _update(self, seq: Seq, updates: dict[str, SeqUpdate]) -> SeqUpdate:
        u = updates.get(seq.req.seq_id)
        if u is None:
            tops = [] if seq.req.params.top_logprobs > 0 else None
            u = updates[seq.req.seq_id] = SeqUpdate(seq.req.seq_id, top_logprobs=tops)
        return u

    def _finish(self, seq: Seq, updates: dict[str, SeqUpdate], ev: FinishEvent) -> None:
        if seq.reported_finished:
            return
        u = self._update(seq, updates)
        u.finished, u.finish_reason, u.matched_stop, u.error = True, ev.reason, ev.matched, ev.error
        seq.reported_finished = True
        del self._seqs[seq.req.seq_id]  # late events are recognised by identity and dropped

    # ------------------------------------------------------------------ loop side

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    async def _make_client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        limits = httpx.Limits(max_connections=self.config.max_connections,
                              max_keepalive_connections=min(64, self.config.max_connections))
        return httpx.AsyncClient(headers=headers, limits=limits, timeout=http_timeout(self.config, 30.0))

    def _emit(self, seq: Seq, ev: Any) -> None:
        self._events.put((seq, ev))

    def _spawn(self, coro: Any) -> asyncio.Task | None:
        if self._closed:
            coro.close()
            return None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_task(self, seq: Seq) -> None:
        if seq.aborted:
            return  # aborted before it started: the caller already holds the abort report
        seq.task = self._spawn(self._streams.run(seq))
        if seq.task is not None:
            self._active.add(seq)
            seq.task.add_done_callback(lambda _t: self._active.discard(seq))

    def _start_abort(self, seq: Seq) -> None:
        self._spawn(self._streams.abort(seq))

    async def _shutdown(self) -> None:
        # Stop what still runs on the servers, then every task, then the connections.
        live = list(self._active)  # includes aborted ones whose abort may not be posted yet
        # (Before its first chunk, a sequence is stopped by closing its stream below.)
        await asyncio.gather(*(self._streams.post_abort(s.url, s.rid) for s in live
                               if s.rid and s.url and s.first_chunk))
        tasks = set(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self._client.aclose()
        await self._loop.shutdown_asyncgens()


def load_sglang_backend(
    url_or_urls: str | Sequence[str], tokenizer: Tokenizer, **opts: Any
) -> SGLangBackend:
    """Connect to one SGLang server, an sglang-router, or a list of workers.

    `opts` are `SGLangConfig` fields (e.g. stall_timeout_s=30, abort_urls=[...]).
    """
    known = {f.name for f in fields(SGLangConfig)}
    unknown = set(opts) - known
    if unknown:
        raise TypeError(f"unknown SGLang options {sorted(unknown)}; known: {sorted(known)}")
    return SGLangBackend(url_or_urls, tokenizer, SGLangConfig(**opts))
