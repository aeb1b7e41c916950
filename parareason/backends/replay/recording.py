"""Record what a backend generates, for `parareason record`.

`RecordingBackend` wraps any backend: it passes every call through and keeps, per
sequence, the context ids, sampled tokens, logprobs (and top-k alternatives when
asked), timings and finish reason. Its tokenizer wrapper logs the tokenizer calls
the runtime makes, so a replay answers them identically without the model.

Sequences that continue an earlier one (context = earlier context + its tokens, as a
scheduler may do when it extends threads in chunks) are stitched into one trace.

Several requests may record at once (they share the engine's batch): `take(key=...)`
hands over only the samples whose `affinity_key` (the request id) is `key`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from parareason.grading import final_answer
from parareason.backends.replay.tracefile import RecordedContext, RecordedTrace
from parareason.backends.base import Backend, GenerationRequest, SeqUpdate, Tokenizer


class RecordingTokenizer:
    def __init__(self, inner: Tokenizer):
        self.inner = inner
        self.name = inner.name
        self.eos_token_ids = inner.eos_token_ids
        self.chat_calls: list[tuple[list[dict[str, str]], bool, list[int]]] = []
        self.encode_calls: list[tuple[str, list[int]]] = []

    def encode(self, text: str) -> list[int]:
        ids = list(self.inner.encode(text))
        self.encode_calls.append((text, ids))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(ids)

    def chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        ids = list(self.inner.chat_ids(messages, add_generation_prompt=add_generation_prompt))
        self.chat_calls.append(([dict(m) for m in messages], bool(add_generation_prompt), ids))
        return ids

    def __getattr__(self, name: str) -> Any:  # anything else the runtime may use
        return getattr(self.inner, name)


@dataclass
class _Rec:
    context: tuple[int, ...]
    t_submit: float
    key: str | None = None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top: list[list[tuple[int, float]]] | None = None
    finish_reason: str | None = None
    t_first: float | None = None
    t_end: float | None = None


class RecordingBackend(Backend):
    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = f"recording({inner.name})"
        self.tokenizer = RecordingTokenizer(inner.tokenizer)
        self._recs: dict[str, _Rec] = {}
        self._order: list[_Rec] = []  # roots in submission order
        self._ends: dict[tuple[int, ...], _Rec] = {}  # context+tokens of a cut sequence -> its record

    @property
    def context_length(self) -> int | None:
        return self.inner.context_length

    def submit(self, req: GenerationRequest) -> None:
        ctx = tuple(req.input_ids)
        rec = self._ends.pop(ctx, None)
        if rec is None or rec.finish_reason not in ("length",):
            rec = _Rec(context=ctx, t_submit=time.monotonic(), key=req.affinity_key)
            self._order.append(rec)
        else:
            rec.finish_reason = None  # it goes on
        if req.params.top_logprobs > 0 and rec.top is None:
            rec.top = []
        self._recs[req.seq_id] = rec
        self.inner.submit(req)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates = self.inner.step(timeout_s)
        now = time.monotonic()
        for u in updates:
            rec = self._recs.get(u.seq_id)
            if rec is None:
                continue
            if u.token_ids and rec.t_first is None:
                rec.t_first = now
            rec.tokens += u.token_ids
            rec.logprobs += u.logprobs
            if rec.top is not None:
                rec.top += u.top_logprobs or [[] for _ in u.token_ids]
            if u.finished:
                rec.finish_reason = u.finish_reason
                rec.t_end = now
                del self._recs[u.seq_id]
                self._ends[rec.context + tuple(rec.tokens)] = rec
        return updates

    def abort(self, seq_id: str) -> None:
        self.inner.abort(seq_id)

    def has_work(self) -> bool:
        return self.inner.has_work()

    def expect_concurrency(self, sequences: int) -> None:
        self.inner.expect_concurrency(sequences)

    def close(self) -> None:
        self.inner.close()

    def take(self, answers: bool = False, key: str | None = None,
             prompt: str | None = None) -> tuple[list[RecordedContext], dict[int, str], dict[str, Any]]:
        """Finished samples recorded so far, as contexts with their traces, the decoded
        piece of every generated token id, and the tokenizer calls; they leave the log.

        answers: also store each trace's answer, by the runtime's own rule
        (`grading.final_answer`: a trace cut by its cap keeps only an answer it stated).

        key: only samples of the request with that affinity key (None: all). prompt:
        only the chat calls that mention it (None: all); encode calls are cheap and
        request-agnostic, so a keyed take copies them all and keeps them for later takes.
        """
        tok = self.tokenizer.inner
        contexts: dict[tuple[int, ...], RecordedContext] = {}
        pieces: dict[int, str] = {}
        mine = [r for r in self._order if key is None or r.key == key]
        for rec in mine:
            if rec.finish_reason is None:
                continue  # never finished (should not happen after a completed request)
            text = tok.decode(rec.tokens)
            trace = RecordedTrace(
                token_ids=list(rec.tokens), logprobs=list(rec.logprobs), finish_reason=rec.finish_reason,
                top_logprobs=rec.top, text=text,
                answer=final_answer(text, cut_by_cap=rec.finish_reason == "length") if answers else None,
                t_first_token_s=None if rec.t_first is None else round(rec.t_first - rec.t_submit, 4),
                elapsed_s=None if rec.t_end is None else round(rec.t_end - rec.t_submit, 4))
            contexts.setdefault(rec.context, RecordedContext(list(rec.context))).traces.append(trace)
            for t in set(rec.tokens) - pieces.keys():
                pieces[t] = tok.decode([t])
        taken = {id(r) for r in mine}
        self._order = [r for r in self._order if id(r) not in taken]
        self._ends = {k: r for k, r in self._ends.items() if id(r) not in taken}
        chat = self.tokenizer.chat_calls
        ours = [c for c in chat if prompt is None or any(prompt in m.get("content", "") for m in c[0])]
        self.tokenizer.chat_calls = [c for c in chat if not any(c is o for o in ours)]
        encode = list({text: (text, ids) for text, ids in self.tokenizer.encode_calls}.values())
        self.tokenizer.encode_calls = encode
        calls = {"chat": ours, "encode": list(encode)}
        if key is None:
            self.tokenizer.encode_calls.clear()
        return list(contexts.values()), pieces, calls
