"""The tensors of one batched decode forward: each running sequence adds its newest token.

Row b reads every KV slot of sequence b (its new slot included, written before it is
read); rows shorter than the longest read the scratch slot in their padding, masked out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from parareason.backends.embedded.sequence import Sequence


@dataclass
class DecodeBatch:
    input_ids: torch.Tensor  # [B, 1]
    positions: torch.Tensor  # [B, 1]
    write_slots: torch.Tensor  # [B, 1]
    read_slots: torch.Tensor  # [B, L]
    mask: torch.Tensor  # [B, 1, 1, L] bool
    logits_at: torch.Tensor  # [B] zeros: the one new position
    seg_ids: torch.Tensor  # [B, 1]


def decode_batch(seqs: list[Sequence], new: list[int]) -> DecodeBatch:
    """Append slot new[b] to seqs[b] and build the forward's inputs."""
    for seq, slot in zip(seqs, new):
        seq.slots = seq.slots + [slot]
    lengths = [len(seq.slots) for seq in seqs]
    L = max(lengths)
    read = torch.zeros(len(seqs), L, dtype=torch.long)  # pads read the scratch slot, masked
    for b, seq in enumerate(seqs):
        read[b, :lengths[b]] = torch.tensor(seq.slots)
    lens = torch.tensor(lengths)
    mask = (torch.arange(L)[None, :] < lens[:, None])[:, None, None, :]  # [B, 1, 1, L]
    shifts = torch.tensor([seq.pos_shift for seq in seqs])  # 0 but for a ParaThinker summary
    return DecodeBatch(
        input_ids=torch.tensor([[seq.tokens[-1]] for seq in seqs]),
        positions=(lens - 1 - shifts)[:, None],
        write_slots=torch.tensor(new)[:, None],
        read_slots=read, mask=mask,
        logits_at=torch.zeros(len(seqs), dtype=torch.long),
        seg_ids=torch.tensor([[seq.seg] for seq in seqs]))
