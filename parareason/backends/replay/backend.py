"""ReplayBackend: serve recorded traces instead of running a model.

Given the questions of a trace file (`parareason record`), a sequence submitted with a
recorded context gets the next recorded trace for that context, in an order fixed by
the backend's seed, and its tokens come out `chunk_size` per `step()`. So any policy
can be compared on recorded samples in seconds, deterministically.

What a replay cannot do, by construction:
* create samples that were never recorded: asking for more samples of a context than
  were recorded, or for a context never recorded (e.g. SCALE's sub-prompts, another
  protocol's prompt), finishes that sequence with finish_reason "error" and a reason;
* change recorded tokens: temperature / top_p / seed of a request are ignored (the
  mismatches are counted in `stats`); a trace recorded with a smaller max_new_tokens
  ends where it was cut ("length").
It does honour: max_new_tokens (shorter than recorded), stop token ids, stop strings,
top_logprobs (when recorded; else none are returned and `stats` counts it), abort, and continuation of a sequence cut by
max_new_tokens (submitting context + emitted tokens resumes the same trace).
Prefix caching is simulated: the first sequence of a context counts it as computed,
later ones as cached.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

from parareason.backends.replay.tracefile import RecordedQuestion, RecordedTrace
from parareason.backends.base import (
    FINISH_ABORT, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP_STRING, FINISH_STOP_TOKEN,
    Backend, GenerationRequest, SeqUpdate,
)

# Ids handed out for text never seen while recording: far above any real vocabulary,
# so they never match recorded model output.
_SYNTHETIC_BASE = 1 << 30


class ReplayTokenizer:
    """Answers the tokenizer calls seen while recording; decodes with recorded pieces."""

    def __init__(self, questions: Sequence[RecordedQuestion]):
        self.name = questions[0].tokenizer if questions else "replay"
        self.eos_token_ids = frozenset(t for q in questions for t in q.eos_token_ids)
        self._pieces: dict[int, str] = {}
        self._chat: dict[str, tuple[int, ...]] = {}
        self._encode: dict[str, tuple[int, ...]] = {}
        for q in questions:
            self._pieces.update(q.pieces)
            for messages, add_gen, ids in q.chat_calls:
                self._chat[_chat_key(messages, add_gen)] = tuple(ids)
            for text, ids in q.encode_calls:
                self._encode[text] = tuple(ids)
        self._synthetic: dict[str, int] = {}

    def _synthetic_id(self, text: str) -> int:
        if text not in self._synthetic:
            tid = _SYNTHETIC_BASE + len(self._synthetic)
            self._synthetic[text] = tid
            self._pieces[tid] = text
        return self._synthetic[text]

    def encode(self, text: str) -> list[int]:
        if text in self._encode:
            return list(self._encode[text])
        return [self._synthetic_id(text)] if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self._pieces.get(int(t), "") for t in ids)

    def chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        key = _chat_key(messages, add_generation_prompt)
        if key in self._chat:
            return list(self._chat[key])
        return [self._synthetic_id("chat:" + key)]


def _chat_key(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return json.dumps([messages, bool(add_generation_prompt)], sort_keys=True, ensure_ascii=False)


@dataclass
class _Pool:
    """The recorded traces of one context and the seeded order they are handed out in."""

    context: tuple[int, ...]
    traces: list[RecordedTrace]
    temperature: float | None
    order: list[int]
    next: int = 0
    prefilled: bool = False

    def take(self) -> RecordedTrace | None:
        if self.next >= len(self.order):
            return None
        trace = self.traces[self.order[self.next]]
        self.next += 1
        return trace


@dataclass
class _Seq:
    req: GenerationRequest
    trace: RecordedTrace
    pos: int  # next token of the trace to emit
    emitted: int = 0  # tokens emitted for this request
    text: str = ""
    first: bool = True
    prefill: tuple[int, int] = (0, 0)  # (computed, cached)


@dataclass
class _ResumePoint:
    trace: RecordedTrace
    pos: int


class ReplayBackend(Backend):
    name = "replay"

    def __init__(self, questions: Sequence[RecordedQuestion], *, seed: int = 0, chunk_size: int = 16):
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.tokenizer = ReplayTokenizer(questions)
        self.seed = seed
        self.chunk_size = chunk_size
        self._pools: dict[tuple[int, ...], _Pool] = {}
        for q in questions:
            temp = q.sampling.get("temperature")
            for c in q.contexts:
                ctx = tuple(c.input_ids)
                pool = self._pools.get(ctx)
                if pool is None:
                    self._pools[ctx] = _Pool(ctx, list(c.traces), temp, [])
                else:  # same context recorded twice (e.g. duplicate questions): pool them
                    pool.traces.extend(c.traces)
        for pool in self._pools.values():
            pool.order = list(range(len(pool.traces)))
            random.Random(_seed_for(seed, pool.context)).shuffle(pool.order)
        self._running: OrderedDict[str, _Seq] = OrderedDict()
        self._pending: list[SeqUpdate] = []  # finished at submit (errors) or by abort
        self._resume: dict[tuple[int, ...], _ResumePoint] = {}
        self._known: set[str] = set()
        self.stats: dict[str, int] = {"sequences": 0, "traces_handed_out": 0, "continuations": 0,
                                      "exhausted": 0, "unknown_context": 0, "sampling_ignored": 0,
                                      "top_logprobs_missing": 0}

    # --- Backend interface -------------------------------------------------------------
    def submit(self, req: GenerationRequest) -> None:
        if req.seq_id in self._known:
            raise ValueError(f"duplicate seq_id {req.seq_id!r}")
        self._known.add(req.seq_id)
        self.stats["sequences"] += 1
        ctx = tuple(req.input_ids)
        resume = self._resume.pop(ctx, None)
        if resume is not None:
            self.stats["continuations"] += 1
            self._running[req.seq_id] = _Seq(req, resume.trace, resume.pos, prefill=(0, len(ctx)))
            return
        pool = self._pools.get(ctx)
        if pool is None:
            self.stats["unknown_context"] += 1
            self._fail(req, f"replay: this context ({len(ctx)} tokens) was never recorded; a replay "
                            "cannot sample new prompts (e.g. sub-prompts or another protocol)")
            return
        trace = pool.take()
        if trace is None:
            self.stats["exhausted"] += 1
            self._fail(req, f"replay: all {len(pool.traces)} recorded traces of this context are used; "
                            "a replay cannot create more samples (record with a larger --n)")
            return
        self.stats["traces_handed_out"] += 1
        if pool.temperature is not None and abs(req.params.temperature - float(pool.temperature)) > 1e-9:
            self.stats["sampling_ignored"] += 1
        if req.params.top_logprobs > 0 and trace.top_logprobs is None:
            self.stats["top_logprobs_missing"] += 1  # recorded without --top-logprobs
        prefill = (0, len(ctx)) if pool.prefilled else (len(ctx), 0)
        pool.prefilled = True
        self._running[req.seq_id] = _Seq(req, trace, 0, prefill=prefill)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        out, self._pending = self._pending, []
        for seq_id in list(self._running):
            seq = self._running[seq_id]
            upd = self._advance(seq)
            if upd.finished:
                del self._running[seq_id]
            out.append(upd)
        return out

    def abort(self, seq_id: str) -> None:
        seq = self._running.pop(seq_id, None)
        if seq is None:
            return  # unknown, already finished, or an error waiting to be reported
        upd = SeqUpdate(seq_id=seq_id, finished=True, finish_reason=FINISH_ABORT)
        self._attach_prefill(seq, upd)
        self._pending.append(upd)

    def has_work(self) -> bool:
        return bool(self._running or self._pending)

    # --- internals ---------------------------------------------------------------------
    def _fail(self, req: GenerationRequest, reason: str) -> None:
        self._pending.append(SeqUpdate(seq_id=req.seq_id, finished=True, finish_reason=FINISH_ERROR,
                                       error=reason, prompt_tokens=len(req.input_ids)))

    def _attach_prefill(self, seq: _Seq, upd: SeqUpdate) -> None:
        if seq.first:
            seq.first = False
            upd.prompt_tokens = len(seq.req.input_ids)
            upd.prefill_computed_tokens, upd.cached_tokens = seq.prefill

    def _advance(self, seq: _Seq) -> SeqUpdate:
        p = seq.req.params
        trace = seq.trace
        upd = SeqUpdate(seq_id=seq.req.seq_id)
        self._attach_prefill(seq, upd)
        want_top = p.top_logprobs > 0 and trace.top_logprobs is not None
        if want_top:
            upd.top_logprobs = []
        for _ in range(self.chunk_size):
            if seq.emitted >= p.max_new_tokens:
                upd.finished, upd.finish_reason = True, FINISH_LENGTH
                self._resume[self._context_after(seq)] = _ResumePoint(trace, seq.pos)
                break
            if seq.pos >= len(trace.token_ids):
                upd.finished, upd.finish_reason = True, trace.finish_reason
                break
            tok = trace.token_ids[seq.pos]
            upd.token_ids.append(tok)
            if seq.pos < len(trace.logprobs):
                upd.logprobs.append(trace.logprobs[seq.pos])
            if want_top:
                assert upd.top_logprobs is not None and trace.top_logprobs is not None
                pos_top = trace.top_logprobs[seq.pos] if seq.pos < len(trace.top_logprobs) else []
                upd.top_logprobs.append([tuple(x) for x in pos_top[: p.top_logprobs]])
            seq.pos += 1
            seq.emitted += 1
            if tok in p.stop_token_ids:
                upd.finished, upd.finish_reason, upd.matched_stop = True, FINISH_STOP_TOKEN, tok
                break
            if p.stop_strings:
                seq.text += self.tokenizer.decode([tok])
                hit = next((s for s in p.stop_strings if s in seq.text), None)
                if hit is not None:
                    upd.finished, upd.finish_reason, upd.matched_stop = True, FINISH_STOP_STRING, hit
                    break
        else:
            # chunk full: finish now if nothing is left, so a sequence is not reported
            # again with an empty update just to say it ended
            if seq.pos >= len(trace.token_ids):
                upd.finished, upd.finish_reason = True, trace.finish_reason
            elif seq.emitted >= p.max_new_tokens:
                upd.finished, upd.finish_reason = True, FINISH_LENGTH
                self._resume[self._context_after(seq)] = _ResumePoint(trace, seq.pos)
        return upd

    @staticmethod
    def _context_after(seq: _Seq) -> tuple[int, ...]:
        start = seq.pos - seq.emitted
        return tuple(seq.req.input_ids) + tuple(seq.trace.token_ids[start:seq.pos])


def _seed_for(seed: int, context: tuple[int, ...]) -> int:
    h = hashlib.sha256(f"{seed}:{','.join(map(str, context))}".encode()).digest()
    return int.from_bytes(h[:8], "little")

