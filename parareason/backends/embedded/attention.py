"""Attention over the token-slot KV pool, reading a shared prefix once for all its rows.

Prefill (several new tokens): the row gathers the keys/values of all its slots and runs
torch SDPA with a causal mask.

Decode (one new token per row) always takes the path below, prefixes or not, so that a
row computes the same way whatever rows share its batch.

Shared prefix (decode, one new token per row): the n siblings of one prompt hold the
same prompt slots, which a plain batch gathers n times per layer. Here each prefix is
read once (a slice of the pool when its slots are one run) and attended by all its
rows together: with one query token per row, the rows' query heads become the query
positions of one attention call per KV head ([1, kv_heads, rows * group, head_dim]).
Each row's own slots go through a second call, and the two partial results merge by
their log-sum-exp (as in FlashInfer's cascade attention and Hydragen):
out = lerp(own, prefix, sigmoid(lse_prefix - lse_own)).

Both calls are torch's CPU flash kernel, which returns the log-sum-exp, and which
computes every query row on its own: a row's prefix output and lse are the same whether
it is attended with 1 sibling or with 100 but for MKL's rounding (its GEMM blocking
follows the call's shape and alignment: the last bit moves now and then), and which slots
count as its prefix is fixed per row at prefill (`Sequence.shared_prefix`). Float32
decode runs decode_attention.py's C kernel instead, which is bitwise; this path serves
prefill, bfloat16, and machines without a C compiler. A row with no sibling in the
batch reads all its slots in one call (two calls would cost it more and save nothing:
4.8 vs 2.1 ms of flash calls a batch-1 step, qwen2.5-0.5b-coder), so its numbers can
differ from those it gets among siblings in the last bits (~1e-7), as padding a row's
slots to the batch's longest already made them differ with plain SDPA; the tokens of a
seeded sample stay the same (tests/backends/test_engine_control.py).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from parareason.backends.embedded.decode_batch import PrefixGroup

_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # (out, logsumexp)


def read_pool(pool: torch.Tensor, slots: torch.Tensor, start: int | None, rows: int) -> torch.Tensor:
    """[rows, kv_heads, L, D] from one layer's pool [capacity, kv_heads, D]: slots [rows, L]
    gathered, or (start given) the run pool[start:start + L] as a view."""
    L = slots.shape[-1]
    got = pool[start:start + L] if start is not None else pool.index_select(0, slots.reshape(-1))
    return got.view(rows, L, *pool.shape[1:]).transpose(1, 2)


def attend(q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, read_slots: torch.Tensor,
           attn_mask: torch.Tensor, read_start: int | None = None,
           prefixes: Sequence[PrefixGroup] = (), own_bias: torch.Tensor | None = None) -> torch.Tensor:
    """q [B, Q, heads, D] (RoPE applied) -> [B, Q, heads * D].

    read_slots [B, L] / attn_mask [B, 1, Q, L] bool: the slots each row reads (after its
    prefix, with prefixes); own_bias (Q = 1, required): attn_mask as an additive float mask
    in q's dtype (the flash kernel's form), built once per forward by the caller."""
    B, Q, H, D = q.shape
    keys = read_pool(k_pool, read_slots, read_start, B)
    values = read_pool(v_pool, read_slots, read_start, B)
    if Q > 1:
        if prefixes:
            raise ValueError("shared prefixes are read for one new token per row")
        out = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=attn_mask, enable_gqa=True)
        return out.transpose(1, 2).reshape(B, Q, H * D)
    if own_bias is None:
        raise ValueError("one new token per row: pass own_bias, the float form of attn_mask")
    kv_heads = k_pool.shape[1]
    group = H // kv_heads
    qf = q.view(B, kv_heads, group, D)  # head h reads kv head h // group
    own, own_lse = _flash(qf, keys, values, attn_mask=own_bias)  # [B, kvh, group, D], [B, kvh, group]
    if not prefixes:
        return own.reshape(B, 1, H * D)
    pre, pre_lse = _prefix_attention(qf, k_pool, v_pool, prefixes, own, own_lse)
    w = torch.sigmoid(pre_lse - own_lse).unsqueeze(-1).to(own.dtype)  # rows without a prefix: 0
    return torch.lerp(own, pre, w).reshape(B, 1, H * D)


def _prefix_attention(qf: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor,
                      prefixes: Sequence[PrefixGroup], like: torch.Tensor,
                      like_lse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each group's rows against its prefix, one call per group; rows in no group get
    output 0 and lse -inf (no weight in the merge)."""
    B, kv_heads, group, D = qf.shape
    if len(prefixes) == 1 and prefixes[0].every_row:
        return _one_prefix(qf, k_pool, v_pool, prefixes[0])
    out = torch.zeros_like(like)
    lse = torch.full_like(like_lse, float("-inf"))
    for p in prefixes:
        o, l = _one_prefix(qf.index_select(0, p.rows), k_pool, v_pool, p)
        out.index_copy_(0, p.rows, o)
        lse.index_copy_(0, p.rows, l)
    return out, lse


def _one_prefix(qf: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor,
                p: PrefixGroup) -> tuple[torch.Tensor, torch.Tensor]:
    R, kv_heads, group, D = qf.shape
    keys = read_pool(k_pool, p.slots, p.start, 1)  # [1, kvh, P, D]: read once for the R rows
    values = read_pool(v_pool, p.slots, p.start, 1)
    queries = qf.transpose(0, 1).reshape(1, kv_heads, R * group, D)
    o, lse = _flash(queries, keys, values)
    return (o.view(kv_heads, R, group, D).transpose(0, 1),
            lse.view(kv_heads, R, group).transpose(0, 1))
