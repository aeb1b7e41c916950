"""One sequence on the server: its streaming `POST /generate`, retries and abort.

Runs on the client's event loop. Every attempt gets a fresh rid; a failure is
retried only while no token of the sequence was delivered (a resend would sample
a different continuation). Tokens go to the caller through `emit`, and every
sequence ends with exactly one `FinishEvent` unless it was aborted or shut down
(then the caller already holds, or needs no, report).

As SGLang 0.5.23 behaves (paths under `sglang/srt/`):
* A queued or retracted request receives no byte: see `pauses.py`.
* `/abort_request` is forwarded only for an rid the tokenizer manager knows,
  once (`managers/tokenizer_manager.py` `abort_request`, `abort_sent`); sent
  before the scheduler holds the request it is lost, and it then suppresses the
  abort of the later disconnect. So until the first chunk, an abort closes the
  stream (the server's disconnect abort); after it, it posts `/abort_request`
  (with the admin key when set, `utils/auth.py`) and waits for the abort chunk.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Sequence

import httpx

from parareason.backends.base import FINISH_ERROR, FINISH_STOP_TOKEN, GenerationRequest
from parareason.backends.sglang.config import SGLangConfig, http_timeout
from parareason.backends.http.failures import RequestFailure
from parareason.backends.sglang.pauses import next_text
from parareason.backends.sglang.request_body import BodyPlan, ContextFull, build_body
from parareason.backends.http.routing import WorkerPool
from parareason.backends.sglang.server_facts import ServerFacts
from parareason.backends.http.sse import SSEParser
from parareason.backends.sglang.stream import ChunkDecoder, Delta, map_finish, parse_payload

log = logging.getLogger(__name__)


@dataclass(eq=False)  # identity semantics: a resubmitted seq_id is a different Seq
class Seq:
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
    first_chunk: bool = False  # (loop) the current attempt got a chunk: the scheduler holds it
    urls_tried: list[str] = field(default_factory=list)  # (loop)


@dataclass
class TokensEvent:
    token_ids: list[int]
    logprobs: list[float]
    top_logprobs: list[list[tuple[int, float]]]
    prompt_tokens: int | None
    cached_tokens: int | None


@dataclass
class FinishEvent:
    reason: str
    matched: str | int | None = None
    error: str | None = None


class SequenceStreams:
    """Runs sequences against the workers; `emit(seq, event)` hands results to the caller."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: SGLangConfig,
        pool: WorkerPool,
        abort_urls: Sequence[str],
        emit: Callable[[Seq, Any], None],
        spawn: Callable[[Any], asyncio.Task | None],
    ) -> None:
        self.client = client
        self.config = config
        self.pool = pool
        self.abort_urls = list(abort_urls)
        self.emit = emit
        self.spawn = spawn
        self.facts = ServerFacts()  # set once the start-up checks ran
        self.unconfirmed_aborts = 0  # aborts the server did not answer with a final chunk in time
        self._warned_abort_status: set[int] = set()

    async def abort(self, seq: Seq) -> None:
        task = seq.task
        if task is None or task.done():
            return
        if seq.first_chunk and seq.rid is not None and seq.url is not None:
            await self.post_abort(seq.url, seq.rid)
            # Let the stream deliver SGLang's final abort chunk and [DONE], then hang up.
            done, _ = await asyncio.wait({task}, timeout=self.config.abort_drain_s)
            if not done:
                self.unconfirmed_aborts += 1
                log.warning("SGLang sent no abort chunk for %s within abort_drain_s=%s; closing the stream",
                            seq.rid, self.config.abort_drain_s)
        task.cancel()  # before the first chunk: closing the stream is the abort that lands

    async def post_abort(self, url: str, rid: str) -> None:
        """POST /abort_request to the request's worker and every `abort_urls` entry, at once."""
        key = self.config.admin_api_key
        headers = {"Authorization": f"Bearer {key}"} if key else None

        async def one(target: str) -> None:
            try:
                r = await self.client.post(f"{target}/abort_request", json={"rid": rid}, headers=headers,
                                           timeout=http_timeout(self.config, 5.0))
            except httpx.HTTPError as e:
                log.info("abort of %s at %s failed: %s", rid, target, e)
                return
            if r.status_code != 200 and r.status_code not in self._warned_abort_status:
                self._warned_abort_status.add(r.status_code)
                hint = {401: "start the client with admin_api_key (server runs --admin-api-key)",
                        403: "the key is not the server's admin key",
                        404: "a router does not forward /abort_request: list the workers in abort_urls"}
                log.warning("/abort_request at %s answered HTTP %d: %s", target, r.status_code,
                            hint.get(r.status_code, r.text[:200]))

        await asyncio.gather(*(one(t) for t in dict.fromkeys([url, *self.abort_urls])))

    async def run(self, seq: Seq) -> None:
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
            seq.first_chunk = False
            try:
                plan = build_body(seq.req, seq.rid, cfg, self.facts.context_length,
                                  self.facts.dp_size if len(self.pool.urls) == 1 else 1,
                                  max_req_input_len=self.facts.max_req_input_len)
            except ContextFull as e:
                self.emit(seq, FinishEvent(FINISH_ERROR, error=str(e)))
                return
            try:
                ev = await self._attempt(seq, seq.url, plan, decoder, deadline)
                self.pool.mark_alive(seq.url)
                self.emit(seq, ev)
                return
            except asyncio.CancelledError:
                return  # abort or shutdown: the caller already has (or needs no) report
            except RequestFailure as f:
                failure = f
            if failure.worker_down:
                self.pool.mark_dead(seq.url)
                if len(self.pool.urls) > 1:
                    excluded.add(seq.url)
            if failure.kind in ("stall", "dropped", "deadline") and seq.first_chunk:
                # The server may still be generating for this rid: stop it. (Before the
                # first chunk, the closed stream is the abort: a posted one could be lost.)
                self.spawn(self.post_abort(seq.url, seq.rid))
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
                self.emit(seq, FinishEvent(FINISH_ERROR, error=f"{failure} [{why}; workers {seq.urls_tried}]"))
                return
            log.info("retrying %s after %s (attempt %d)", seq.req.seq_id, failure, seq.attempts)
            await asyncio.sleep(backoff)

    async def _attempt(self, seq: Seq, url: str, plan: BodyPlan, decoder: ChunkDecoder, deadline: float) -> FinishEvent:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestFailure("deadline", "request deadline passed")
        try:
            async with asyncio.timeout(remaining):
                return await self._stream(seq, url, plan, decoder)
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

    async def _stream(self, seq: Seq, url: str, plan: BodyPlan, decoder: ChunkDecoder) -> FinishEvent:
        cfg = self.config
        # No httpx read timeout: pauses.next_text bounds the waits (a pause is not a failure).
        request = self.client.build_request("POST", f"{url}/generate", json=plan.body,
                                            timeout=http_timeout(cfg, None))
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the
            # response arrives just as the task is cancelled, swallowing an abort (the stream
            # then ran on; the abort-before-first-chunk test failed 2 in 9 runs under load).
            async with asyncio.timeout(cfg.first_token_timeout_s):
                resp = await self.client.send(request, stream=True)
        except TimeoutError:
            raise RequestFailure("stall", f"no response within first_token_timeout_s={cfg.first_token_timeout_s}") from None
        try:
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")[:300]
                raise RequestFailure("status", f"HTTP {resp.status_code} from {url}: {text}", resp.status_code)
            texts = resp.aiter_text()
            try:
                return await self._read_events(seq, url, texts, decoder, plan.client_stop_ids)
            finally:
                await texts.aclose()  # finalize now, not in a GC hook after the loop stopped
        finally:
            await resp.aclose()

    async def _read_events(self, seq: Seq, url: str, texts: AsyncIterator[str], decoder: ChunkDecoder,
                           client_stops: frozenset[int]) -> FinishEvent:
        """Consume SSE text until the final chunk; emit tokens as they come."""
        parser = SSEParser()
        while (text := await next_text(self.client, self.config, url, texts, lambda: seq.first_chunk)) is not None:
            for payload in parser.feed(text):
                try:
                    chunk = parse_payload(payload)
                except ValueError as e:
                    raise RequestFailure("protocol", f"bad stream chunk: {e}") from None
                if chunk is None:  # [DONE] without a final chunk
                    raise RequestFailure("dropped", "stream ended ([DONE]) without a finish_reason")
                seq.first_chunk = True
                delta = decoder.decode(chunk)
                if delta.error is not None:
                    raise RequestFailure("server", delta.error)
                stop = _cut_at_stop(delta, client_stops)
                if delta.token_ids or delta.prompt_tokens is not None:
                    seq.delivered += len(delta.token_ids)
                    self.emit(seq, TokensEvent(delta.token_ids, delta.logprobs, delta.top_logprobs,
                                               delta.prompt_tokens, delta.cached_tokens))
                if stop is not None:
                    if seq.rid is not None:
                        self.spawn(self.post_abort(url, seq.rid))  # the server would go on: stop it
                    return FinishEvent(FINISH_STOP_TOKEN, stop)
                if delta.finish is not None:
                    # Done: only "[DONE]" can follow, so do not wait for it (a server that
                    # hangs after its final chunk must not turn a success into a stall).
                    reason, matched, error = map_finish(delta.finish, seq.req.params.stop_token_ids, seq.aborted)
                    return FinishEvent(reason, matched, error)
        raise RequestFailure("dropped", "stream closed before a finish_reason")


def _cut_at_stop(delta: Delta, stops: frozenset[int]) -> int | None:
    """Cut the delta after the first stop id the client checks itself; that id, or None."""
    i = next((i for i, t in enumerate(delta.token_ids) if t in stops), None)
    if i is None:
        return None
    tok = delta.token_ids[i]
    delta.token_ids, delta.logprobs = delta.token_ids[: i + 1], delta.logprobs[: i + 1]
    delta.top_logprobs = delta.top_logprobs[: i + 1]
    delta.finish = None
    return tok
