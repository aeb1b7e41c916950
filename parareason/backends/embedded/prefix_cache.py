"""Prefix reuse: find the longest computed prefix of a new context, keep finished KV.

A *prefix source* is anything with `tokens`, `slots` (KV of tokens[:len(slots)]) and
`logits` (the model's next-token logits after exactly those len(slots) tokens, or
None): a live sequence or an entry of the LRU of finished/aborted sequences below.

Matching is a linear scan with numpy comparisons over live sequences and cached
entries. Both sets are bounded (max batch size, LRU token budget), a scan costs
microseconds per thousand tokens, and it finds a branch point at any token, which
is what a thread tree needs (a child branching mid-generation, a parent resuming
after a join with appended text).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

import numpy as np
import torch

from parareason.backends.embedded.kv_pool import KVPool


class PrefixSource(Protocol):
    tokens: list[int]
    slots: list[int]

    @property
    def logits(self) -> torch.Tensor | None: ...


@dataclass(eq=False)  # identity semantics: entries hold tensors
class CachedPrefix:
    tokens: list[int]
    slots: list[int]  # this entry holds one reference to each
    logits: torch.Tensor | None


@dataclass
class PrefixMatch:
    source: PrefixSource | None
    length: int  # tokens of the new context whose KV `source` already has

    def reusable_logits(self, context_len: int) -> torch.Tensor | None:
        """Logits for the new context's next token, when no forward is needed at all."""
        if self.source is None or self.length != context_len or len(self.source.slots) != context_len:
            return None
        return self.source.logits


def common_prefix_len(a: np.ndarray, b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    neq = np.flatnonzero(a[:n] != np.asarray(b[:n], dtype=a.dtype))
    return int(neq[0]) if len(neq) else n


def longest_prefix(context: Sequence[int], sources: Iterable[PrefixSource]) -> PrefixMatch:
    """The source whose computed KV covers the longest prefix of `context`.

    Ties prefer a source that also has logits for exactly this context (no forward).
    """
    ids = np.asarray(context, dtype=np.int64)
    best = PrefixMatch(None, 0)
    best_free = False
    for src in sources:
        k, computed = best.length, len(src.slots)
        if k < len(ids):
            # To beat `best`, src must match a longer prefix, so it must agree at index k.
            if computed <= k or src.tokens[k] != ids[k]:
                continue
        elif best_free or computed != len(ids) or src.logits is None:
            continue  # `best` covers the whole context; only free logits could improve it
        n = common_prefix_len(ids, src.tokens[:len(src.slots)])
        free = n == len(ids) == len(src.slots) and src.logits is not None
        if n > best.length or (n == best.length and free and not best_free):
            best, best_free = PrefixMatch(src, n), free
    return best


class PrefixCache:
    """LRU of finished/aborted sequences' KV, bounded by the slots only it keeps alive.

    Slots shared with live sequences or with other entries are counted once, so 16
    finished siblings of one long prompt cost the prompt once plus their own tails.
    """

    def __init__(self, pool: KVPool, max_tokens: int):
        self.pool = pool
        self.max_tokens = max_tokens
        self.entries: OrderedDict[int, CachedPrefix] = OrderedDict()
        self._next_key = 0
        self._cache_refs = np.zeros(pool.capacity, dtype=np.int32)  # references held by entries

    def __iter__(self):
        return iter(list(self.entries.values()))

    def __len__(self) -> int:
        return len(self.entries)

    def _refs(self) -> np.ndarray:
        if len(self._cache_refs) < self.pool.capacity:  # the pool grew
            grown = np.zeros(self.pool.capacity, dtype=np.int32)
            grown[:len(self._cache_refs)] = self._cache_refs
            self._cache_refs = grown
        return self._cache_refs

    def cached_only_tokens(self) -> int:
        """Slots alive only because of this cache: what evicting everything would free."""
        refs = self._refs()
        return int(((refs > 0) & (self.pool.refcount[:len(refs)] == refs)).sum())

    def put(self, tokens: list[int], slots: list[int], logits: torch.Tensor | None) -> None:
        """Take over one reference to each of `slots` (the caller gives its own up)."""
        if not slots or self.max_tokens <= 0:
            self.pool.release(slots)
            return
        # An entry whose computed tokens are a prefix of the new one's is redundant.
        new_ids = np.asarray(tokens[:len(slots)], dtype=np.int64)
        for key, e in list(self.entries.items()):
            if len(e.slots) <= len(slots) and common_prefix_len(new_ids, e.tokens[:len(e.slots)]) == len(e.slots):
                self._drop(key)
        np.add.at(self._refs(), slots, 1)
        self.entries[self._next_key] = CachedPrefix(list(tokens), list(slots), logits)
        self._next_key += 1
        self.evict()

    def touch(self, entry: CachedPrefix) -> None:
        for key, e in self.entries.items():
            if e is entry:
                self.entries.move_to_end(key)
                return

    def evict(self) -> None:
        while self.entries and self.cached_only_tokens() > self.max_tokens:
            self._drop(next(iter(self.entries)))

    def clear(self) -> None:
        for key in list(self.entries):
            self._drop(key)

    def _drop(self, key: int) -> None:
        e = self.entries.pop(key)
        np.subtract.at(self._refs(), e.slots, 1)
        self.pool.release(e.slots)
