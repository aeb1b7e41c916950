"""One sequence on the server: its streaming `POST /generate`, retries and abort.

Runs on the client's event loop. Every attempt gets a fresh rid; a failure is
retried only while no token of the sequence was delivered (a resend would sample
a different continuation). Tokens go to the caller through `emit`, and every
sequence ends with exactly one `FinishEvent` unless it was aborted or shut down
(then the caller already holds, or needs no, report).
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import httpx

from parareason.backends.base import FINISH_ERROR, GenerationRequest
from parareason.backends.sglang.config import SGLangConfig, http_timeout
from parareason.backends.sglang.errors import RequestFailure
from parareason.backends.sglang.routing import WorkerPool
from parareason.backends.sglang.stream import ChunkDecoder, SSEParser, map_finish, parse_payload

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

    async def abort(self, seq: Seq) -> None:
        task = seq.task
        if task is None or task.done():
            return
        if seq.rid is not None and seq.url is not None:
            await self.post_abort(seq.url, seq.rid)
            # Let the stream deliver SGLang's final abort chunk and [DONE], then hang up.
            await asyncio.wait({task}, timeout=self.config.abort_drain_s)
        task.cancel()

    async def post_abort(self, url: str, rid: str) -> None:
        """POST /abort_request to the request's worker and every `abort_urls` entry, at once."""

        async def one(target: str) -> None:
            try:
                await self.client.post(f"{target}/abort_request", json={"rid": rid},
                                       timeout=http_timeout(self.config, 5.0))
            except httpx.HTTPError as e:
                log.info("abort of %s at %s failed: %s", rid, target, e)

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
            try:
                ev = await self._attempt(seq, seq.url, seq.rid, decoder, deadline)
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
            if failure.kind in ("stall", "dropped", "deadline"):
                # The server may still be generating for this rid: stop it.
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

    def body(self, req: GenerationRequest, rid: str) -> dict[str, Any]:
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

    async def _attempt(self, seq: Seq, url: str, rid: str, decoder: ChunkDecoder, deadline: float) -> FinishEvent:
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

    async def _stream(self, seq: Seq, url: str, rid: str, decoder: ChunkDecoder) -> FinishEvent:
        async with self.client.stream("POST", f"{url}/generate", json=self.body(seq.req, rid),
                                      timeout=http_timeout(self.config, self.config.stall_timeout_s)) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")[:300]
                raise RequestFailure("status", f"HTTP {resp.status_code} from {url}: {text}", resp.status_code)
            texts = resp.aiter_text()
            try:
                return await self._read_events(seq, texts, decoder)
            finally:
                await texts.aclose()  # finalize now, not in a GC hook after the loop stopped

    async def _read_events(self, seq: Seq, texts: Any, decoder: ChunkDecoder) -> FinishEvent:
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
                    self.emit(seq, TokensEvent(delta.token_ids, delta.logprobs, delta.top_logprobs,
                                               delta.prompt_tokens, delta.cached_tokens))
                if delta.finish is not None:
                    # Done: only "[DONE]" can follow, so do not wait for it (a server that
                    # hangs after its final chunk must not turn a success into a stall).
                    reason, matched, error = map_finish(delta.finish, seq.req.params.stop_token_ids, seq.aborted)
                    return FinishEvent(reason, matched, error)
        raise RequestFailure("dropped", "stream closed before a finish_reason")
