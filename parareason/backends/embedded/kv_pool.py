"""Token-slot KV pool: one K and one V row per token slot, reference counted.

A sequence's KV is a list of slot ids, one per context token. Sequences that share a
prefix hold the same slot ids (page size 1, as in SGLang's token pool), so a child
thread branching at any token reuses its parent's KV without copying, and no
copy-on-write is ever needed: new tokens always go to fresh slots. A slot returns to
the free list when its last holder (live sequence or prefix-cache entry) lets go.

Slot 0 is a scratch slot: padding rows of a batch write there and it is never read
unmasked. The pool grows by doubling when it runs out.
"""
from __future__ import annotations

import numpy as np
import torch


class KVPool:
    SCRATCH = 0

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
                 capacity: int = 4096):
        capacity = max(capacity, 2)
        shape = (num_layers, capacity, num_kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype)
        self.v = torch.zeros(shape, dtype=dtype)
        self.refcount = np.zeros(capacity, dtype=np.int32)
        self.refcount[self.SCRATCH] = 1  # pinned forever
        self._free: list[int] = list(range(capacity - 1, 0, -1))  # pop() hands out low ids first

    @property
    def capacity(self) -> int:
        return self.k.shape[1]

    @property
    def used(self) -> int:
        """Slots held by someone (scratch excluded)."""
        return self.capacity - 1 - len(self._free)

    def _grow(self, need: int) -> None:
        old = self.capacity
        new = old
        while new - old + len(self._free) < need:
            new *= 2
        pad = (self.k.shape[0], new - old, *self.k.shape[2:])
        self.k = torch.cat([self.k, torch.zeros(pad, dtype=self.k.dtype)], dim=1)
        self.v = torch.cat([self.v, torch.zeros(pad, dtype=self.v.dtype)], dim=1)
        self.refcount = np.concatenate([self.refcount, np.zeros(new - old, dtype=np.int32)])
        self._free = list(range(new - 1, old - 1, -1)) + self._free

    def alloc(self, n: int) -> list[int]:
        """n fresh slots, each with refcount 1."""
        if n > len(self._free):
            self._grow(n)
        slots = [self._free.pop() for _ in range(n)]
        self.refcount[slots] = 1
        return slots

    def retain(self, slots: list[int]) -> None:
        if slots:
            np.add.at(self.refcount, slots, 1)

    def release(self, slots: list[int]) -> None:
        if not slots:
            return
        idx = np.asarray(slots, dtype=np.int64)
        np.subtract.at(self.refcount, idx, 1)
        if (self.refcount[idx] < 0).any():
            raise RuntimeError("KV slot released more often than retained")
        freed = np.unique(idx[self.refcount[idx] == 0])
        self._free.extend(freed.tolist())
