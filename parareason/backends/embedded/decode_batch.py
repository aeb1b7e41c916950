"""The tensors of one batched decode forward: each running sequence adds its newest token.

Row b reads every KV slot of sequence b (its new slot included, written before it is
read); rows shorter than the longest read the scratch slot in their padding, masked out.

Per step this used to build each row's slot tensor from its Python list (torch.tensor
of ~200 ints per row, 64 rows) and copy it into the batch row by row. Now every sequence
keeps a growing int64 tensor of its slots (`SlotTensor`, extended by the new slot only)
and the batch's `read` is one `pad_sequence` of them. A sequence whose slots are one
ascending run (batch 1, a fresh prompt) also passes the run's first slot, so that the
model reads its KV as a slice of the pool instead of gathering a copy (same values,
same strides: the same attention result).

Rows that share a prompt share its KV slots: where two rows or more hold the same first
`seq.shared_prefix` slots, those are read as a `PrefixGroup`, once per step for all of
them, not once per row (attention.py), and `read_slots` lists only each such row's slots
after the prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from parareason.backends.embedded.sequence import Sequence


class SlotTensor:
    """An int64 tensor mirroring the list `src` (a sequence's slots), grown in place as
    the list is appended to; whether the slots after the first `split` (the row's own, read
    per row) are one ascending run of ids, and where the first `split` start if they are one."""

    def __init__(self, src: list[int], split: int = 0):
        self.src = src
        self.split = min(split, len(src))
        self.buf = torch.empty(max(16, 2 * len(src)), dtype=torch.long)
        self.n = 0
        self.run = True  # src[split:n] == range(src[split], src[split] + n - split)
        self.prefix_start = run_start(src[:self.split])
        self.extend()

    def extend(self) -> None:
        """Copy in what was appended to `src` since the last call."""
        new = self.src[self.n:]
        if not new:
            return
        end = self.n + len(new)
        if end > len(self.buf):
            grown = torch.empty(2 * end, dtype=torch.long)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:end] = torch.tensor(new, dtype=torch.long) if len(new) > 1 else new[0]
        lo = max(self.split - self.n, 0)  # the new slots past the prefix
        if lo < len(new):
            first, at = self.src[self.split], self.n + lo - self.split
            self.run = self.run and all(s == first + at + j for j, s in enumerate(new[lo:]))
        self.n = end

    def view(self) -> torch.Tensor:
        return self.buf[:self.n]

    def own(self) -> torch.Tensor:
        """The slots after the shared prefix."""
        return self.buf[self.split:self.n]

    @property
    def whole_run(self) -> bool:
        """Whether all the slots so far are one ascending run."""
        if not self.split:
            return self.run
        return (self.prefix_start is not None and self.run
                and (self.n == self.split or self.src[self.split] == self.prefix_start + self.split))


def slot_tensor(seq: Sequence) -> SlotTensor:
    """`seq`'s SlotTensor, up to date. A new list in `seq.slots` (prefill, sharing) starts
    a new one; the list itself is only ever appended to (`decode_batch`)."""
    c = seq.slot_cache
    if c is None or c.src is not seq.slots or c.n > len(seq.slots) or c.split != min(seq.shared_prefix, len(seq.slots)):
        c = seq.slot_cache = SlotTensor(seq.slots, seq.shared_prefix)
    else:
        c.extend()
    return c


def run_start(slots: list[int]) -> int | None:
    """slots[0] when slots == range(slots[0], slots[0] + len(slots)), else None."""
    if not slots or slots[-1] - slots[0] != len(slots) - 1:
        return None
    first = slots[0]
    return first if all(s == first + j for j, s in enumerate(slots)) else None


@dataclass
class PrefixGroup:
    """Batch rows whose first len(slots) KV slots are the same (siblings of one prompt)."""
    rows: torch.Tensor  # [R] rows of the batch, ascending
    slots: torch.Tensor  # [P]
    start: int | None  # slots == range(start, start + P): read as a slice of the pool
    every_row: bool  # rows == range(B)


@dataclass
class DecodeBatch:
    input_ids: torch.Tensor  # [B, 1]
    positions: torch.Tensor  # [B, 1]
    write_slots: torch.Tensor  # [B, 1]
    read_slots: torch.Tensor  # [B, L] each row's slots after its group's shared prefix (all, in no group)
    mask: torch.Tensor  # [B, 1, 1, L] bool
    logits_at: torch.Tensor  # [B] zeros: the one new position
    seg_ids: torch.Tensor  # [B, 1]
    read_start: int | None  # batch 1 with one run of slots: its first (model.forward)
    prefixes: list[PrefixGroup]  # shared prefixes, each read once for its rows


def decode_batch(seqs: list[Sequence], new: list[int]) -> DecodeBatch:
    """Append slot new[b] to seqs[b] and build the forward's inputs."""
    for seq, slot in zip(seqs, new):
        # In place: a running sequence's list is its own (sharing copies a slice of it),
        # and its SlotTensor follows appends.
        seq.slots.append(slot)
    caches = [slot_tensor(seq) for seq in seqs]
    B = len(seqs)
    groups = prefix_groups(caches)
    grouped = {b for g in groups for b in g.rows.tolist()}
    reads = [c.own() if b in grouped else c.view() for b, c in enumerate(caches)]
    lens = torch.tensor([c.n for c in caches])
    read_lens = torch.tensor([len(r) for r in reads])
    read = reads[0][None] if B == 1 else pad_sequence(reads, batch_first=True)
    L = read.shape[1]
    mask = (torch.arange(L)[None, :] < read_lens[:, None])[:, None, None, :]  # [B, 1, 1, L]
    shifts = torch.tensor([seq.pos_shift for seq in seqs])  # 0 but for a ParaThinker summary
    return DecodeBatch(
        input_ids=torch.tensor([[seq.tokens[-1]] for seq in seqs]),
        positions=(lens - 1 - shifts)[:, None],
        write_slots=torch.tensor(new)[:, None],
        read_slots=read, mask=mask,
        logits_at=torch.zeros(B, dtype=torch.long),
        seg_ids=torch.tensor([[seq.seg] for seq in seqs]),
        read_start=seqs[0].slots[0] if B == 1 and caches[0].whole_run else None,
        prefixes=groups)


def prefix_groups(caches: list[SlotTensor]) -> list[PrefixGroup]:
    """Group the rows by shared prefix, where two rows or more share one (a prefix read for
    one row costs a second attention call and saves nothing: such a row reads all its
    slots in one). Two rows holding the same slot at the same index hold the same slots
    before it (a list only ever copies a prefix of another and appends fresh slots), so
    (split, last prefix slot) names a prefix."""
    rows: dict[tuple[int, int], list[int]] = {}
    for b, c in enumerate(caches):
        if c.split:
            rows.setdefault((c.split, c.src[c.split - 1]), []).append(b)
    groups = []
    for members in rows.values():
        if len(members) < 2:
            continue
        c = caches[members[0]]
        groups.append(PrefixGroup(rows=torch.tensor(members), slots=c.buf[:c.split], start=c.prefix_start,
                                  every_row=len(members) == len(caches)))
    return groups
