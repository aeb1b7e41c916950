"""attention.py: a prefix shared by several rows is read once and gives plain attention's result."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.embedded.attention import attend
from parareason.backends.embedded.decode_batch import decode_batch
from parareason.backends.embedded.sampler import make_generator
from parareason.backends.embedded.sequence import Sequence

KV_HEADS, GROUP, D = 2, 7, 16


def seq(slots: list[int], shared: int) -> Sequence:
    s = Sequence(req=GenerationRequest("s", (1,), SamplingParams()), generator=make_generator(0),
                 tokens=[1] * len(slots))
    s.slots, s.shared_prefix = slots, shared
    return s


def plain(q, k_pool, v_pool, seqs):
    """Every row gathers all its slots, torch SDPA with GQA: the reference."""
    rows = [torch.tensor(s.slots) for s in seqs]
    L = max(len(r) for r in rows)
    read = torch.stack([F.pad(r, (0, L - len(r))) for r in rows])
    mask = (torch.arange(L)[None] < torch.tensor([len(r) for r in rows])[:, None])[:, None, None, :]
    keys = k_pool[read].transpose(1, 2)
    values = v_pool[read].transpose(1, 2)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask, enable_gqa=True)
    return out.transpose(1, 2).reshape(len(seqs), 1, -1)


def cascade(q, k_pool, v_pool, seqs, new):
    d = decode_batch(seqs, new)
    bias = torch.zeros(d.mask.shape).masked_fill_(~d.mask, float("-inf"))
    return d, attend(q, k_pool, v_pool, d.read_slots, d.mask, d.read_start, d.prefixes, bias)


def pools(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, KV_HEADS, D, generator=g), torch.randn(n, KV_HEADS, D, generator=g)


def test_shared_prefixes_are_grouped_and_give_plain_attention():
    k_pool, v_pool = pools()
    prompt_a = list(range(1, 41))  # one run: read as a slice
    prompt_b = [90, 70, 71, 95, 60, 61, 62]  # scattered: gathered once
    seqs = [seq(prompt_a + [200 + i, 210 + i], 40) for i in range(3)]  # siblings of prompt a
    seqs += [seq(prompt_b + [300 + i], 7) for i in range(2)]  # siblings of prompt b
    seqs += [seq([150, 151, 152], 0)]  # no shared prefix (a ParaThinker row)
    seqs.insert(2, seq(prompt_a[:20] + [250, 251], 20))  # a shorter prefix of a, alone: no group
    new = list(range(320, 320 + len(seqs)))
    q = torch.randn(len(seqs), 1, KV_HEADS * GROUP, D)
    d, got = cascade(q, k_pool, v_pool, seqs, new)
    groups = sorted((g.rows.tolist(), g.slots.tolist(), g.start) for g in d.prefixes)
    assert groups == sorted([([0, 1, 3], prompt_a, 1), ([4, 5], prompt_b, None)])
    assert d.read_slots[0, :3].tolist() == [200, 210, 320] and d.mask[:, 0, 0].sum(-1).tolist() == [3, 3, 23, 3, 2, 2, 4]
    assert d.read_slots[2, :23].tolist() == prompt_a[:20] + [250, 251, 322]  # a row in no group reads all its slots
    assert d.positions[:, 0].tolist() == [len(s.slots) - 1 for s in seqs]
    assert torch.allclose(got, plain(q, k_pool, v_pool, seqs), atol=1e-5)
    # each row in a batch of its own: the same up to the rounding that padding its own
    # slots to the batch's longest changes (plain SDPA's padding does the same)
    for b, s in enumerate(seqs):
        s.slots.pop()
        _, alone = cascade(q[b:b + 1], k_pool, v_pool, [s], [new[b]])
        assert torch.allclose(alone[0], got[b], atol=1e-6, rtol=0), b


def test_a_rows_result_barely_moves_among_any_number_of_siblings():
    # Not bitwise: torch's flash kernel multiplies through MKL, whose kernel choice follows
    # the call's shape and buffer alignment (a row's last bit moved about 1 run in 12 on an
    # Intel Xeon). The C kernel, which float32 decode runs, is bitwise (test_decode_attention.py).
    k_pool, v_pool = pools(seed=1)
    prompt = list(range(5, 60))
    q = torch.randn(16, 1, KV_HEADS * GROUP, D)
    crowd = [seq(prompt + [100 + i], len(prompt)) for i in range(16)]
    _, together = cascade(q, k_pool, v_pool, crowd, list(range(200, 216)))
    pair = [seq(prompt + [107], len(prompt)), seq(prompt + [103], len(prompt))]
    d, two = cascade(torch.cat([q[7:8], q[3:4]]), k_pool, v_pool, pair, [207, 203])
    assert d.prefixes[0].every_row and d.read_slots.tolist() == [[107, 207], [103, 203]]
    assert torch.allclose(two[0], together[7], atol=1e-6, rtol=0)
    assert torch.allclose(two[1], together[3], atol=1e-6, rtol=0)


def test_batch_one_reads_all_its_slots_in_one_call_and_a_run_as_a_slice():
    k_pool, v_pool = pools(seed=2)
    s = seq(list(range(1, 30)), 28)
    q = torch.randn(1, 1, KV_HEADS * GROUP, D)
    d, got = cascade(q, k_pool, v_pool, [s], [30])
    assert not d.prefixes and d.read_start == 1 and d.read_slots.tolist() == [list(range(1, 31))]
    assert torch.allclose(got, plain(q, k_pool, v_pool, [s]), atol=1e-5)
    d = decode_batch([s], [40])  # 31 skipped: no longer one run
    assert d.read_start is None and d.read_slots.tolist() == [list(range(1, 31)) + [40]]
    scattered = seq([9, 3, 4, 5], 3)  # own slots one run, the prefix not: gathered
    assert decode_batch([scattered], [6]).read_start is None
