"""Decode attention in C (kernels/decode_attention.c): RoPE, the KV write and attention over
the pool in one call per layer, for float32 rows that each add one token.

The torch path (model.forward's RoPE ops, `index_copy_`, attention.attend) runs ~10 torch
calls a layer; at batch 1 their fixed cost is most of attention's time. This kernel reads
each row's slots in place (no gathered copy), a shared prompt once per step for all its
rows (attention.py's cascade, in one softmax instead of two merged), and a row's bits
do not depend on its siblings: torch's flash kernel multiplies through MKL, whose
results moved with the call's shape and alignment (a test saw a row change with its
batch about 1 run in 12). It takes float32 only; bfloat16 runs the torch path.
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Sequence

import torch

from parareason.backends.embedded.decode_batch import PrefixGroup
from parareason.backends.embedded.kernel_library import available, library, threads


def usable(dtype: torch.dtype, head_dim: int) -> bool:
    """Whether decode attention can run in C here for a model computing in `dtype`."""
    return dtype == torch.float32 and head_dim % 8 == 0 and head_dim <= 1024 and available() is None


_P = ctypes.c_void_p


class _Batch(ctypes.Structure):
    """kernels/decode_attention.c's att_batch."""
    _fields_ = [(n, ctypes.c_int) for n in ("B", "H", "KVH", "D", "L", "groups", "threads")] + [
        ("scale", ctypes.c_float)] + [(n, _P) for n in (
            "positions", "cos_t", "sin_t", "write_slots", "read_slots", "mask", "row_group", "group_slots",
            "group_offsets")]


@dataclass(frozen=True)
class DecodeReads:
    """What every layer of one decode forward shares, in the kernel's form (built once)."""
    tensors: tuple[torch.Tensor, ...]  # what `batch` points into, kept alive with it
    batch: _Batch


def decode_reads(read_slots: torch.Tensor, attn_mask: torch.Tensor, prefixes: Sequence[PrefixGroup],
                 write_slots: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 heads: int, kv_heads: int, capacity: int) -> DecodeReads:
    """read_slots [B, L] (each row's slots after its prefix group's), attn_mask [B, 1, 1, L],
    write_slots and positions [B, 1] as model.forward takes them; cos / sin [positions, D]
    float32. Slots are checked against the pool's capacity and positions against the
    tables (the kernel indexes them unchecked)."""
    B, L = read_slots.shape
    D = cos.shape[1]
    row_group = torch.full((B,), -1, dtype=torch.int32)
    for g, p in enumerate(prefixes):
        row_group[p.rows] = g
    offsets = torch.tensor([0, *(len(p.slots) for p in prefixes)], dtype=torch.long).cumsum(0)
    group_slots = torch.cat([p.slots for p in prefixes]) if prefixes else torch.zeros(1, dtype=torch.long)
    t = dict(read=read_slots.to(torch.long).contiguous(), mask=attn_mask.reshape(B, L).contiguous(),
             row_group=row_group, prefix=group_slots.to(torch.long).contiguous(), offsets=offsets,
             write=write_slots.reshape(B).to(torch.long).contiguous(),
             positions=positions.reshape(B).to(torch.long).contiguous(), cos=cos.contiguous(), sin=sin.contiguous())
    for name in ("read", "prefix", "write"):
        if t[name].numel() and not 0 <= int(t[name].min()) <= int(t[name].max()) < capacity:
            raise IndexError(f"a {name} slot is outside the KV pool's {capacity} slots")
    if B and not 0 <= int(t["positions"].min()) <= int(t["positions"].max()) < len(cos):
        raise IndexError(f"a position is outside the model's {len(cos)}")
    if t["cos"].dtype != torch.float32 or kv_heads < 1 or heads % kv_heads:
        raise ValueError(f"decode attention in C takes float32 tables and heads divisible by kv heads")
    batch = _Batch(B, heads, kv_heads, D, L, len(prefixes), threads(), 1.0 / math.sqrt(D),
                   *(t[n].data_ptr() for n in ("positions", "cos", "sin", "write", "read", "mask", "row_group",
                                               "prefix", "offsets")))
    return DecodeReads(tuple(t.values()), batch)


def rope_write_attend(qkv: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, reads: DecodeReads,
                      seg: torch.Tensor | None = None, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """qkv [B, 1, (heads + 2 kv_heads) * D] float32 (before RoPE) -> attention output
    [B, 1, heads * D]; writes each row's k and v to its write slot in one layer's pools
    [capacity, kv_heads, D]. seg [B, D] or [D]: ParaThinker's segment embeddings, added to k
    and v before RoPE. lib: another build of the kernels (tests)."""
    b = reads.batch
    x = qkv.reshape(b.B, -1)
    if x.dtype != torch.float32 or k_pool.dtype != torch.float32 or x.shape[1] != (b.H + 2 * b.KVH) * b.D \
            or k_pool.shape[1:] != (b.KVH, b.D):
        raise ValueError(f"decode attention in C takes float32 q/k/v of {b.H} + 2 x {b.KVH} heads of {b.D}")
    if x.stride(1) != 1:
        x = x.contiguous()
    seg_rows = None if seg is None else seg.expand(b.B, b.D).float().contiguous()
    out = torch.empty((b.B, b.H * b.D), dtype=torch.float32)
    failed = (lib or library()).attn_decode(
        ctypes.byref(b), x.data_ptr(), x.stride(0), None if seg_rows is None else seg_rows.data_ptr(),
        k_pool.data_ptr(), v_pool.data_ptr(), out.data_ptr())
    if failed == -2:
        raise ValueError(f"decode attention in C takes a head_dim that is a multiple of 8 up to 1024, not {b.D}")
    if failed:
        raise MemoryError(f"decode attention: no memory for the scratch of {b.B} rows")
    return out.view(b.B, 1, b.H * b.D)
