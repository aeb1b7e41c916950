"""`TransformersEngine`: the embedded CPU backend (continuous batching, shared-prefix KV).

One `step()`:
  1. admit waiting sequences (up to `max_batch_size` running): find the longest
     computed prefix among live sequences and the LRU of finished ones, share its KV
     slots, prefill only the rest (nothing at all when an identical context already
     has next-token logits, e.g. 16 samples of one prompt);
  2. sample one token for every running sequence from its pending logits, each with
     its own params and RNG, and check its stop conditions; finished ones leave now,
     their KV goes to the prefix LRU;
  3. run ONE batched forward over all still-running sequences (their new token) to
     get next step's logits. Finished rows cost nothing from here on. Rows that share
     a prompt read its KV once in this forward, not once each (attention.py).

See base.py for the contract. Everything one sequence does wrong (too long, bad ids)
ends that sequence with finish_reason "error"; `step()` never raises for it.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import torch

from parareason.backends.base import (
    FINISH_ABORT,
    FINISH_ERROR,
    Backend,
    GenerationRequest,
    PromptScores,
    SeqUpdate,
)
from parareason.backends.embedded.decode_batch import decode_batch, run_start
from parareason.backends.embedded.dtype_choice import DtypeChoice
from parareason.backends.embedded.kv_pool import KVPool
from parareason.backends.embedded.model import DecoderModel
from parareason.backends.embedded.parathinker_native import FEATURE as NATIVE
from parareason.backends.embedded.parathinker_native import ParaThinkerIds, layout
from parareason.backends.embedded.parathinker_native import prefill as native_prefill
from parareason.backends.embedded.profiling import BATCH_PREP, SAMPLING, region
from parareason.backends.embedded.prompt_scoring import score_prompt
from parareason.backends.embedded.prefix_cache import CachedPrefix, PrefixCache, longest_prefix
from parareason.backends.embedded import sampler, sampler_kernel
from parareason.backends.embedded.sampler import make_generator
from parareason.backends.embedded.sequence import Sequence, check_stop
from parareason.backends.embedded.tokenizer import HFTokenizer


@dataclass
class EngineOptions:
    max_batch_size: int = 64  # running sequences per decode step; more wait their turn
    max_batch_limit: int = 256  # how far expect_concurrency() may widen max_batch_size
    prefill_chunk: int = 512  # prompt tokens per prefill forward (bounds attention memory)
    prefix_cache_tokens: int = 16384  # KV tokens the LRU of finished sequences may keep alive
    kv_initial_capacity: int = 4096  # token slots; the pool doubles when full
    shared_prefix_attention: bool = True  # a prompt's KV read once for its rows (attention.py)
    # ParaThinker native layout (parathinker_native.py): "auto" = when the tokenizer has its tokens
    parathinker: ParaThinkerIds | str | None = "auto"


@dataclass
class EngineStats:
    """Cumulative counters, for benchmarks and debugging."""

    steps: int = 0
    prefill_forwards: int = 0
    prefill_tokens: int = 0
    prefill_s: float = 0.0
    decode_forwards: int = 0
    decode_rows: int = 0  # sequences x decode forwards
    decode_s: float = 0.0
    sample_s: float = 0.0
    free_prefills: int = 0  # sequences admitted with no forward at all


class TransformersEngine(Backend):
    name = "transformers"

    def __init__(self, model: DecoderModel, tokenizer: HFTokenizer, options: EngineOptions | None = None,
                 dtype_choice: DtypeChoice | None = None):
        self.model = model
        self.dtype_choice = dtype_choice  # how the weights' dtype was chosen (build_engine)
        self.tokenizer = tokenizer
        self.options = options or EngineOptions()
        self.max_positions = model.config.max_position_embeddings
        self.pool: KVPool = model.new_kv_pool(self.options.kv_initial_capacity)
        self.prefix_cache = PrefixCache(self.pool, self.options.prefix_cache_tokens)
        self.waiting: OrderedDict[str, GenerationRequest] = OrderedDict()
        self.running: OrderedDict[str, Sequence] = OrderedDict()
        self._outbox: list[SeqUpdate] = []  # aborts and admission errors, reported next step
        self.stats = EngineStats()
        self._threads = torch.get_num_threads()  # as build_engine set them
        self.sampling = "c" if sampler_kernel.usable() else "torch"  # "torch": sampler.py, the reference
        pt = self.options.parathinker
        self.parathinker = ParaThinkerIds.from_tokenizer(tokenizer) if pt == "auto" else pt

    @property
    def context_length(self) -> int | None:
        return self.max_positions  # the model's position embeddings: prompt + generated

    def supports(self, feature: str) -> bool:
        """Optional features protocols may ask for ("parathinker_native")."""
        # only when the protocol's markers encode to the ids the layout is read from
        return feature == NATIVE and self.parathinker is not None and \
            self.parathinker == ParaThinkerIds.from_tokenizer(self.tokenizer)

    def submit(self, req: GenerationRequest) -> None:
        if req.seq_id in self.waiting or req.seq_id in self.running:
            raise ValueError(f"sequence id {req.seq_id!r} is already live")
        self.waiting[req.seq_id] = req

    def abort(self, seq_id: str) -> None:
        if seq_id in self.waiting:
            req = self.waiting.pop(seq_id)
            self._outbox.append(SeqUpdate(seq_id, finished=True, finish_reason=FINISH_ABORT,
                                          prompt_tokens=len(req.input_ids)))
        elif seq_id in self.running:
            seq = self.running.pop(seq_id)
            self._retire(seq)
            self._outbox.append(self._finish_update(seq, FINISH_ABORT))

    def has_work(self) -> bool:
        return bool(self.waiting or self.running or self._outbox)

    def expect_concurrency(self, sequences: int) -> None:
        """Widen the batch cap to `sequences` (never narrow it), up to `max_batch_limit`:
        on CPU a GEMM over more rows runs at a higher FLOP rate, so one wide step beats
        several narrow ones."""
        wanted = min(sequences, self.options.max_batch_limit)
        self.options.max_batch_size = max(self.options.max_batch_size, wanted)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        self.stats.steps += 1
        updates, self._outbox = self._outbox, []
        self._admit(updates)  # prefill: its attention over the chunk gains from torch's threads
        with self.model.decode_threads(self._threads):
            decoding = self._sample_all(updates)
            self._decode(decoding, updates)
        return updates

    def score_prompt(self, input_ids: list[int] | tuple[int, ...], top_logprobs: int = 0) -> PromptScores:
        return score_prompt(self, input_ids, top_logprobs)  # prompt_scoring.py: own KV, one forward

    def close(self) -> None:
        for seq in list(self.running.values()):
            self.pool.release(seq.slots)
        self.running.clear()
        self.waiting.clear()
        self.prefix_cache.clear()

    def _admit(self, updates: list[SeqUpdate]) -> None:
        while self.waiting and len(self.running) < self.options.max_batch_size:
            _, req = self.waiting.popitem(last=False)
            seq = Sequence(req=req, generator=make_generator(req.params.seed), tokens=list(req.input_ids))
            try:
                self._validate(req)
                self._prefill(seq)
            except Exception as e:  # this sequence only
                self.pool.release(seq.slots)
                seq.slots = []
                updates.append(self._finish_update(seq, FINISH_ERROR, error=f"{type(e).__name__}: {e}"))
                continue
            self.running[req.seq_id] = seq

    def _validate(self, req: GenerationRequest) -> None:
        n, vocab = len(req.input_ids), self.model.config.vocab_size
        if n == 0:
            raise ValueError("empty input_ids")
        if n >= self.max_positions:
            raise ValueError(f"context of {n} tokens leaves no room under the model's "
                             f"{self.max_positions} max positions")
        if min(req.input_ids) < 0 or max(req.input_ids) >= vocab:
            raise ValueError(f"token id out of range [0, {vocab})")
        if req.params.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")

    def _prefill(self, seq: Sequence) -> None:
        ids = seq.tokens
        lay = layout(ids, self.parathinker) if isinstance(self.parathinker, ParaThinkerIds) else None
        if lay is not None:
            return native_prefill(self, seq, lay)
        seq.shared_prefix = len(ids) - 1 if self.options.shared_prefix_attention else 0  # all siblings hold it
        match = longest_prefix(ids, [*self.running.values(), *self.prefix_cache])
        free_logits = match.reusable_logits(len(ids))
        # Reuse at most len-1 tokens unless the logits come for free: the last context
        # token must go through the model to give the next-token distribution.
        reuse = match.length if free_logits is not None else min(match.length, len(ids) - 1)
        if reuse:
            seq.slots = match.source.slots[:reuse]
            self.pool.retain(seq.slots)
            if isinstance(match.source, CachedPrefix):
                self.prefix_cache.touch(match.source)
        seq.cached_tokens = reuse
        seq.prefill_computed_tokens = len(ids) - reuse
        if free_logits is not None:
            seq.logits = free_logits
            self.stats.free_prefills += 1
            return
        t0 = time.perf_counter()
        for start in range(reuse, len(ids), self.options.prefill_chunk):
            chunk = ids[start:start + self.options.prefill_chunk]
            new = self.pool.alloc(len(chunk))
            seq.slots = seq.slots + new  # a new list: never mutate one shared with the source
            q = len(chunk)
            read = torch.tensor([seq.slots])
            kpos = torch.arange(len(seq.slots))
            qpos = torch.arange(start, start + q)
            mask = (kpos[None, :] <= qpos[:, None])[None, None]  # [1, 1, Q, L] causal
            seq.logits = self.model.forward(
                torch.tensor([chunk]), qpos[None], self.pool, torch.tensor([new]), read, mask,
                torch.tensor([q - 1]), read_start=run_start(seq.slots))[0]
            self.stats.prefill_forwards += 1
            self.stats.prefill_tokens += q
        self.stats.prefill_s += time.perf_counter() - t0

    def _sample_all(self, updates: list[SeqUpdate]) -> list[Sequence]:
        """Sample one token per running sequence; returns those that continue."""
        with region(SAMPLING):
            return self._sample_rows(updates)

    def _sample_rows(self, updates: list[SeqUpdate]) -> list[Sequence]:
        t0 = time.perf_counter()
        keep: list[Sequence] = []
        seqs = list(self.running.values())
        sample_batch = sampler_kernel.sample_batch if self.sampling == "c" else sampler.sample_batch
        sampled = sample_batch([seq.logits for seq in seqs], [seq.req.params for seq in seqs],
                               [seq.generator for seq in seqs])
        for seq, s in zip(seqs, sampled):
            try:
                if isinstance(s, Exception):  # this row's sampling failed: end it alone
                    raise s
                seq.tokens.append(s.token)
                seq.generated.append(s.token)
                stop = check_stop(seq, self.tokenizer.eos_token_ids, self.tokenizer.decode_raw,
                                  self.max_positions)
            except Exception as e:
                del self.running[seq.seq_id]
                self._retire(seq, cache=False)
                updates.append(self._finish_update(seq, FINISH_ERROR, error=f"{type(e).__name__}: {e}"))
                continue
            u = self._usage_update(seq)
            u.token_ids, u.logprobs = [s.token], [s.logprob]
            if s.top is not None:
                u.top_logprobs = [s.top]
            if stop is not None:
                u.finished, u.finish_reason, u.matched_stop = True, stop.reason, stop.matched
                del self.running[seq.seq_id]
                self._retire(seq)
            else:
                keep.append(seq)
            updates.append(u)
        self.stats.sample_s += time.perf_counter() - t0
        return keep

    def _decode(self, seqs: list[Sequence], updates: list[SeqUpdate]) -> None:
        """One forward for all continuing sequences: feed each its newest token."""
        if not seqs:
            return
        t0 = time.perf_counter()
        try:
            with region(BATCH_PREP):
                d = decode_batch(seqs, self.pool.alloc(len(seqs)))
            logits = self.model.forward(d.input_ids, d.positions, self.pool, d.write_slots, d.read_slots, d.mask,
                                        d.logits_at, seg_ids=d.seg_ids, read_start=d.read_start,
                                        prefixes=d.prefixes)
            for b, seq in enumerate(seqs):
                seq.logits = logits[b]
        except Exception as e:  # cannot tell which row failed: end all of them
            by_id = {u.seq_id: u for u in updates}
            for seq in seqs:
                self.running.pop(seq.seq_id, None)
                self._retire(seq, cache=False)
                u = by_id[seq.seq_id]
                u.finished, u.finish_reason, u.error = True, FINISH_ERROR, f"{type(e).__name__}: {e}"
        self.stats.decode_forwards += 1
        self.stats.decode_rows += len(seqs)
        self.stats.decode_s += time.perf_counter() - t0

    def _retire(self, seq: Sequence, cache: bool = True) -> None:
        """Hand a leaving sequence's KV to the prefix LRU (or free it)."""
        slots, seq.slots = seq.slots, []
        if cache:
            self.prefix_cache.put(seq.tokens, slots, seq.logits)
        else:
            self.pool.release(slots)

    def _usage_update(self, seq: Sequence) -> SeqUpdate:
        u = SeqUpdate(seq.seq_id)
        if not seq.usage_reported:
            u.prompt_tokens = len(seq.req.input_ids)
            u.cached_tokens = seq.cached_tokens
            u.prefill_computed_tokens = seq.prefill_computed_tokens
            seq.usage_reported = True
        return u

    def _finish_update(self, seq: Sequence, reason: str, error: str | None = None) -> SeqUpdate:
        u = self._usage_update(seq)
        u.finished, u.finish_reason, u.error = True, reason, error
        return u
