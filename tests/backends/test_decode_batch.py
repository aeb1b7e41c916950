"""decode_batch.py: the batched decode inputs from per-sequence slot tensors (no model)."""
from __future__ import annotations

import torch

from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.embedded.decode_batch import decode_batch, run_start, slot_tensor
from parareason.backends.embedded.sampler import make_generator
from parareason.backends.embedded.sequence import Sequence


def seq(slots: list[int], tokens: list[int]) -> Sequence:
    s = Sequence(req=GenerationRequest("s", tuple(tokens), SamplingParams()), generator=make_generator(0),
                 tokens=list(tokens))
    s.slots = slots
    return s


def old_read(seqs: list[Sequence]) -> tuple[torch.Tensor, torch.Tensor]:
    """read slots and mask as the engine built them row by row before."""
    lengths = [len(s.slots) for s in seqs]
    L = max(lengths)
    read = torch.zeros(len(seqs), L, dtype=torch.long)
    for b, s in enumerate(seqs):
        read[b, :lengths[b]] = torch.tensor(s.slots)
    return read, (torch.arange(L)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]


def test_the_batch_reads_every_rows_slots_step_after_step_as_before():
    a, b, c = seq([1, 2, 3], [5, 6, 7]), seq([9, 4], [5, 8]), seq(list(range(10, 30)), list(range(20)))
    nxt = 40
    for step in range(6):
        rows = [a, b, c] if step % 2 == 0 else [c, a]  # rows leave and come back, in any order
        new = list(range(nxt, nxt + len(rows)))
        nxt += len(rows)
        d = decode_batch(rows, new)
        read, mask = old_read(rows)
        assert torch.equal(d.read_slots, read) and torch.equal(d.mask, mask)
        assert d.write_slots[:, 0].tolist() == new and all(r.slots[-1] == n for r, n in zip(rows, new))
        assert d.positions[:, 0].tolist() == [len(r.slots) - 1 for r in rows]
        assert d.input_ids[:, 0].tolist() == [r.tokens[-1] for r in rows] and d.read_start is None


def test_a_new_slots_list_rebuilds_the_tensor_and_runs_are_detected():
    s = seq([7, 8, 9], [1, 2, 3])
    d = decode_batch([s], [10])
    assert d.read_start == 7 and d.read_slots.tolist() == [[7, 8, 9, 10]]
    assert decode_batch([s], [12]).read_start is None  # 11 skipped: no longer one run
    s.slots = [3, 4]  # replaced (shared prefix, prefill): the cache starts over
    assert slot_tensor(s).view().tolist() == [3, 4] and slot_tensor(s).run
    many = seq(list(range(1, 40)), [0] * 39)
    for n in range(40, 90):  # grows past its first buffer
        assert decode_batch([many], [n]).read_start == 1
    assert slot_tensor(many).view().tolist() == list(range(1, 90))
    assert run_start([4, 5, 6]) == 4 and run_start([4, 6, 5]) is None and run_start([5, 4]) is None
    assert run_start([]) is None and run_start([0, 2, 1, 3]) is None
