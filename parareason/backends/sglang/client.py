"""`SGLangBackend`: the runtime's `Backend` over SGLang's native HTTP API.

One streaming `POST /generate` per sequence, always with `input_ids` (the
thread's exact trie path) so siblings hit the server's radix cache, explicit
sampling params, `return_logprob`, and a request id that starts with the
sequence id. `abort()` posts `/abort_request`.

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
import time
import uuid
from dataclasses import dataclass, field, fields
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
from parareason.backends.sglang.errors import RequestFailure, TokenizerMismatch
from parareason.backends.sglang.routing import WorkerPool
from parareason.backends.sglang.stream import ChunkDecoder, SSEParser, map_finish, parse_payload

log = logging.getLogger(__name__)

# Strings whose token ids must be identical on both sides: words, digits, LaTeX,
# newlines and non-ASCII, where tokenizers of different families disagree.
DEFAULT_TOKENIZER_PROBES = (
    "Hello world! The answer is \\boxed{42}.",
    " 12345 + 678 = 13023\n\nStep 2:",
    "Ünïcödé — 数学, ∑ x_i",
)


@dataclass
class SGLangConfig:
    connect_timeout_s: float = 5.0
    stall_timeout_s: float = 60.0  # an open stream that sends no byte this long has failed
    request_timeout_s: float = 3600.0  # hard deadline per sequence, retries included
    max_retries: int = 3  # resends, only while no token of the sequence was delivered
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    stream_mode: str = "auto"  # "auto" | "cumulative" | "incremental" (server's streaming flag)
    check_tokenizer: bool = True
    tokenizer_probes: tuple[str, ...] = DEFAULT_TOKENIZER_PROBES
    wait_ready_s: float = 0.0  # keep polling /health this long while workers start up
    health_timeout_s: float = 30.0  # SGLang's /health runs a 1-token generation
    api_key: str | None = None
    # SamplingParams.seed goes out as sampling_params.sampling_seed, which only recent
    # SGLang builds know; older ones fail such requests. False: never send it.
    send_seed: bool = True
    # Behind sglang-router, /abort_request is not proxied: list the worker URLs here
    # to fan aborts out to them (unknown rids are a no-op on a worker). Closing the
    # stream also aborts, ~2 s later.
    abort_urls: tuple[str, ...] = ()
    abort_drain_s: float = 3.0  # after an abort, read the stream's final chunk this long
    dead_cooldown_s: float = 5.0  # skip a worker this long after it refused a connection
    max_connections: int = 512


@dataclass(eq=False)  # identity semantics: a resubmitted seq_id is a different _Seq
class _Seq:
    """One submitted sequence. Fields marked (caller) are touched only by the caller's thread."""

    req: GenerationRequest
    reported_finished: bool = False  # (caller)
    accounted: bool = False  # (caller) prefill accounting reported
    aborted: bool = False  # set by the caller; read by the loop task
    rid: str | None = None  # current attempt's rid (loop)
    url: str | None = None  # worker of the current attempt (loop)
    delivered: int = 0  # tokens pushed to the caller's queue (loop)
    task: asyncio.Task | None = None  # (loop)
    attempts: int = 0  # (loop)
    urls_tried: list[str] = field(default_factory=list)  # (loop)


@dataclass
class _TokensEvent:
    token_ids: list[int]
    logprobs: list[float]
    top_logprobs: list[list[tuple[int, float]]]
    prompt_tokens: int | None
    cached_tokens: int | None


@dataclass
class _FinishEvent:
    reason: str
    matched: str | int | None = None
    error: str | None = None


def normalize_urls(url_or_urls: str | Sequence[str]) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['http://a', 'http://b'] without trailing slashes."""
    raw = url_or_urls.split(",") if isinstance(url_or_urls, str) else list(url_or_urls)
    urls = []
    for u in raw:
        u = u.strip().rstrip("/")
        if not u:
            continue
        urls.append(u if "://" in u else f"http://{u}")
    if not urls:
        raise BackendError("no SGLang URL given")
    return list(dict.fromkeys(urls))


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
        self._abort_urls = normalize_urls(self.config.abort_urls) if self.config.abort_urls else []
        self.model_info: dict[str, Any] = {}
        self._seqs: dict[str, _Seq] = {}
        self._events: queue.Queue[tuple[_Seq, Any]] = queue.Queue()
        self._abort_reports: list[_Seq] = []
        self._tasks: set[asyncio.Task] = set()  # (loop) every task we started, until done
        self._active: set[_Seq] = set()  # (loop) sequences whose stream task still runs
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sglang-client", daemon=True)
        self._thread.start()
        self._client: httpx.AsyncClient = self._call(self._make_client(), timeout=10)
        try:
            budget = self.config.wait_ready_s + self.config.health_timeout_s + 60
            self._call(self._startup(), timeout=budget)
        except BackendError:
            self.close()
            raise
        except (httpx.HTTPError, ValueError, KeyError, TypeError, TimeoutError) as e:
            self.close()
            raise BackendError(f"SGLang start-up check failed for {self.urls}: {type(e).__name__}: {e}") from e
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ caller side

    def submit(self, req: GenerationRequest) -> None:
        if self._closed:
            raise BackendError("SGLangBackend is closed")
        old = self._seqs.get(req.seq_id)
        if old is not None and not old.reported_finished:
            raise ValueError(f"sequence {req.seq_id!r} is already running")
        seq = _Seq(req)
        self._seqs[req.seq_id] = seq
        if not req.input_ids:
            self._events.put((seq, _FinishEvent(FINISH_ERROR, error="empty input_ids")))
            return
        self._loop.call_soon_threadsafe(self._start_task, seq)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates: dict[str, SeqUpdate] = {}
        for seq in self._abort_reports:
            self._finish(seq, updates, _FinishEvent(FINISH_ABORT))
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

    def _apply(self, seq: _Seq, ev: Any, updates: dict[str, SeqUpdate]) -> None:
        if self._seqs.get(seq.req.seq_id) is not seq or seq.reported_finished:
            return  # a late event for an aborted/finished (or replaced) sequence
        if isinstance(ev, _FinishEvent):
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

    def _update(self, seq: _Seq, updates: dict[str, SeqUpdate]) -> SeqUpdate:
        u = updates.get(seq.req.seq_id)
        if u is None:
            tops = [] if seq.req.params.top_logprobs > 0 else None
            u = updates[seq.req.seq_id] = SeqUpdate(seq.req.seq_id, top_logprobs=tops)
        return u

    def _finish(self, seq: _Seq, updates: dict[str, SeqUpdate], ev: _FinishEvent) -> None:
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
        return httpx.AsyncClient(headers=headers, limits=limits, timeout=self._timeout(30.0))

    def _timeout(self, read_s: float) -> httpx.Timeout:
        c = self.config.connect_timeout_s
        return httpx.Timeout(connect=c, read=read_s, write=c + 10, pool=max(c, 30.0))

    def _emit(self, seq: _Seq, ev: Any) -> None:
        self._events.put((seq, ev))

    def _spawn(self, coro: Any) -> asyncio.Task | None:
        if self._closed:
            coro.close()
            return None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_task(self, seq: _Seq) -> None:
        if seq.aborted:
            return  # aborted before it started: the caller already holds the abort report
        seq.task = self._spawn(self._run(seq))
        if seq.task is not None:
            self._active.add(seq)
            seq.task.add_done_callback(lambda _t: self._active.discard(seq))

    def _start_abort(self, seq: _Seq) -> None:
        self._spawn(self._abort(seq))

    async def _abort(self, seq: _Seq) -> None:
        task = seq.task
        if task is None or task.done():
            return
        if seq.rid is not None and seq.url is not None:
            await self._post_abort(seq.url, seq.rid)
            # Let the stream deliver SGLang's final abort chunk and [DONE], then hang up.
            await asyncio.wait({task}, timeout=self.config.abort_drain_s)
        task.cancel()

    async def _post_abort(self, url: str, rid: str) -> None:
        """POST /abort_request to the request's worker and every `abort_urls` entry, at once."""

        async def one(target: str) -> None:
            try:
                await self._client.post(f"{target}/abort_request", json={"rid": rid},
                                         timeout=self._timeout(5.0))
            except httpx.HTTPError as e:
                log.info("abort of %s at %s failed: %s", rid, target, e)

        await asyncio.gather(*(one(t) for t in dict.fromkeys([url, *self._abort_urls])))

    async def _shutdown(self) -> None:
        # Stop what still runs on the servers, then every task, then the connections.
        live = list(self._active)  # includes aborted ones whose abort may not be posted yet
        await asyncio.gather(*(self._post_abort(s.url, s.rid) for s in live if s.rid and s.url))
        tasks = set(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self._client.aclose()
        await self._loop.shutdown_asyncgens()

    async def _run(self, seq: _Seq) -> None:
        """All attempts of one sequence; always ends with exactly one finish event."""
        cfg = self.config
        deadline = time.monotonic() + cfg.request_timeout_s
        key = seq.req.affinity_key or seq.req.seq_id
        decoder = ChunkDecoder(cfg.stream_mode)
        excluded: set[str] = set()
        while not seq.aborted:
            seq.attempts += 1
            seq.url = self.pool.pick(key, exclude=excluded)
            # A fresh rid per attempt: the previous one may still be in flight on the
            # server (duplicate rids get 400), and SGLang aborts by rid *prefix*, so
            # a fixed-width unique suffix keeps "t1" from aborting "t10".
            seq.rid = f"{seq.req.seq_id}.{uuid.uuid4().hex[:12]}"
            seq.urls_tried.append(seq.url)
            try:
                ev = await self._attempt(seq, seq.url, seq.rid, decoder, deadline)
                self.pool.mark_alive(seq.url)
                self._emit(seq, ev)
                return
            except asyncio.CancelledError:
                return  # abort or shutdown: the caller already has (or needs no) report
            except RequestFailure as f:
                failure = f
            if failure.worker_down:
                self.pool.mark_dead(seq.url)
                if len(self.pool.urls) > 1:
                    excluded.add(seq.url)
            if failure.kind in ("stall", "dropped", "deadline"):
                # The server may still be generating for this rid: stop it.
                self._spawn(self._post_abort(seq.url, seq.rid))
            backoff = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (seq.attempts - 1))
            retry = (
                failure.retryable
                and seq.delivered == 0
                and seq.attempts <= cfg.max_retries
                and time.monotonic() + backoff < deadline
                and not seq.aborted
            )
            if not retry:
                why = "after tokens arrived, not retried" if seq.delivered else f"after {seq.attempts} attempt(s)"
                self._emit(seq, _FinishEvent(FINISH_ERROR, error=f"{failure} [{why}; workers {seq.urls_tried}]"))
                return
            log.info("retrying %s after %s (attempt %d)", seq.req.seq_id, failure, seq.attempts)
            await asyncio.sleep(backoff)

    def _body(self, req: GenerationRequest, rid: str) -> dict[str, Any]:
        p = req.params
        sp: dict[str, Any] = {
            "max_new_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "top_k": p.top_k if p.top_k > 0 else -1,
            # Explicit neutral values: unset ones come from the model's
            # generation_config.json (--sampling-defaults model), e.g. a repetition
            # penalty the embedded engine would not apply.
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "ignore_eos": p.ignore_eos,
        }
        if p.stop_strings:
            sp["stop"] = list(p.stop_strings)
        if p.stop_token_ids:
            sp["stop_token_ids"] = list(p.stop_token_ids)
        if p.seed is not None and self.config.send_seed:
            sp["sampling_seed"] = p.seed
        return {
            "input_ids": list(req.input_ids),
            "sampling_params": sp,
            "rid": rid,
            "stream": True,
            "return_logprob": True,
            "logprob_start_len": -1,  # output logprobs only; >= 0 would cap the prefix-cache match
            "top_logprobs_num": p.top_logprobs,
        }

    async def _attempt(
        self, seq: _Seq, url: str, rid: str, decoder: ChunkDecoder, deadline: float
    ) -> _FinishEvent:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestFailure("deadline", "request deadline passed")
        try:
            async with asyncio.timeout(remaining):
                return await self._stream(seq, url, rid, decoder)
        except TimeoutError:
            raise RequestFailure("deadline", f"no finish within request_timeout_s={self.config.request_timeout_s}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise RequestFailure("connect", f"cannot connect to {url}: {e!r}") from None
        except httpx.ReadTimeout:
            raise RequestFailure("stall", f"no bytes for stall_timeout_s={self.config.stall_timeout_s}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            raise RequestFailure("dropped", f"connection dropped mid-stream: {e!r}") from None
        except httpx.HTTPError as e:
            raise RequestFailure("dropped", f"{type(e).__name__}: {e}") from None

    async def _stream(self, seq: _Seq, url: str, rid: str, decoder: ChunkDecoder) -> _FinishEvent:
        async with self._client.stream("POST", f"{url}/generate", json=self._body(seq.req, rid),
                                       timeout=self._timeout(self.config.stall_timeout_s)) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")[:300]
                raise RequestFailure("status", f"HTTP {resp.status_code} from {url}: {text}", resp.status_code)
            texts = resp.aiter_text()
            try:
                return await self._read_events(seq, texts, decoder)
            finally:
                await texts.aclose()  # finalize now, not in a GC hook after the loop stopped

    async def _read_events(self, seq: _Seq, texts: Any, decoder: ChunkDecoder) -> _FinishEvent:
        """Consume SSE text until the final chunk; emit tokens as they come."""
        parser = SSEParser()
        async for text in texts:
            for payload in parser.feed(text):
                try:
                    chunk = parse_payload(payload)
                except ValueError as e:
                    raise RequestFailure("protocol", f"bad stream chunk: {e}") from None
                if chunk is None:  # [DONE] without a final chunk
                    raise RequestFailure("dropped", "stream ended ([DONE]) without a finish_reason")
                delta = decoder.decode(chunk)
                if delta.error is not None:
                    raise RequestFailure("server", delta.error)
                if delta.token_ids or delta.prompt_tokens is not None:
                    seq.delivered += len(delta.token_ids)
                    self._emit(seq, _TokensEvent(delta.token_ids, delta.logprobs, delta.top_logprobs,
                                                 delta.prompt_tokens, delta.cached_tokens))
                if delta.finish is not None:
                    # Done: only "[DONE]" can follow, so do not wait for it (a server that
                    # hangs after its final chunk must not turn a success into a stall).
                    reason, matched, error = map_finish(delta.finish, seq.req.params.stop_token_ids, seq.aborted)
                    return _FinishEvent(reason, matched, error)
        raise RequestFailure("dropped", "stream closed before a finish_reason")

    # ------------------------------------------------------------------ start-up checks

    async def _startup(self) -> None:
        cfg = self.config
        ready_by = time.monotonic() + cfg.wait_ready_s

        async def wait_healthy(url: str) -> str | None:
            while True:
                problem = await self._health(url)
                if problem is None or time.monotonic() >= ready_by:
                    return problem
                await asyncio.sleep(0.5)

        # Concurrently: one slow or black-holed worker must not delay the others.
        results = await asyncio.gather(*(wait_healthy(u) for u in self.urls))
        problems = {u: p for u, p in zip(self.urls, results) if p is not None}
        alive = [u for u in self.urls if u not in problems]
        for url in problems:
            self.pool.mark_dead(url)
        if not alive:
            raise BackendError(f"no SGLang worker reachable: {problems}")
        for url, p in problems.items():
            log.warning("SGLang worker %s is down at start-up (%s); its keys fail over", url, p)
        for url in alive:
            info = await self._model_info(url)
            if not self.model_info:
                self.model_info = info
            if cfg.check_tokenizer:
                await self._check_tokenizer(url, info)

    async def _health(self, url: str) -> str | None:
        try:
            r = await self._client.get(f"{url}/health", timeout=self._timeout(self.config.health_timeout_s))
        except httpx.HTTPError as e:
            return f"cannot connect: {e!r}"
        return None if r.status_code == 200 else f"/health answered HTTP {r.status_code}"

    async def _model_info(self, url: str) -> dict[str, Any]:
        for path in ("/get_model_info", "/model_info"):
            r = await self._client.get(f"{url}{path}")
            if r.status_code == 200:
                info = r.json()
                if info.get("is_generation") is False:
                    raise BackendError(f"{url} serves a non-generation model: {info}")
                return info
        raise BackendError(f"{url} answers neither /get_model_info nor /model_info (is it SGLang?)")

    async def _check_tokenizer(self, url: str, info: dict[str, Any]) -> None:
        """Refuse a server whose tokenizer would read our token ids differently."""
        tok = self.tokenizer
        probes = list(self.config.tokenizer_probes)
        local = [list(tok.encode(p)) for p in probes]
        where = f"server {url} (model {info.get('model_path')!r}) vs local tokenizer {tok.name!r}"
        local_vocab = getattr(tok, "vocab_size", None)
        if local_vocab is not None and info.get("vocab_size") is not None and int(info["vocab_size"]) != int(local_vocab):
            raise TokenizerMismatch(f"vocab size {info['vocab_size']} != {local_vocab}: {where}")
        for path in ("/tokenize", "/v1/tokenize"):
            remote_variants = []
            for add_special in (False, True):
                r = await self._client.post(f"{url}{path}", json={"prompt": probes, "add_special_tokens": add_special})
                tokens = r.json().get("tokens") if r.status_code == 200 else None
                if not isinstance(tokens, list) or len(tokens) != len(probes):
                    break  # absent, or a shape we do not know: try the next way
                remote_variants.append([list(x) for x in tokens])
            if not remote_variants:
                continue
            if local not in remote_variants:
                i = next(i for i in range(len(probes)) if local[i] != remote_variants[0][i])
                raise TokenizerMismatch(
                    f"tokenizer mismatch, {where}: {probes[i]!r} -> server {remote_variants[0][i][:12]} "
                    f"local {local[i][:12]}. Start the server with the runtime's model, or pass the "
                    f"matching tokenizer.")
            return
        for path in ("/detokenize", "/v1/detokenize"):
            r = await self._client.post(f"{url}{path}", json={"tokens": local})
            remote = r.json().get("text") if r.status_code == 200 else None
            if not isinstance(remote, list):
                continue
            expected = [tok.decode(ids) for ids in local]
            if remote != expected:
                raise TokenizerMismatch(f"tokenizer mismatch, {where}: server decodes our ids as {remote!r}, "
                                        f"local decode gives {expected!r}")
            return
        log.warning("%s: server offers no tokenize/detokenize endpoint; tokenizer not verified", where)


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
