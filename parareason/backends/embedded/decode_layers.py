"""A decode step's decoder layers in one C call (kernels/decode_layers.c), for q8 weights
with attention in C.

model.forward's Python loop makes about seven calls a layer at decode: the four q8
linears, the attention, two residual adds. Each costs a few microseconds of Python and
ctypes before the C work starts (~5.6 us a q8 call, measured in session 13), ~170 calls a
step for qwen2.5-0.5b-coder's 24 layers: at batch 1, a step's largest cost outside its
matmuls. The C loop makes the same calls in the same order on the same buffers' values,
so the residual stream, the KV pool and the logits get the same bits as the Python loop
(tests/backends/test_decode_layers.py).

The layers' weights are described once, when the model loads (`LayerArray`), and only read
after: two engines sharing one model may decode at the same time (a ctypes call lets go of
the GIL). What moves comes with each call: the KV pool (it grows by reallocation) and
ParaThinker's per-row segment embeddings.
"""
from __future__ import annotations

import ctypes
from typing import Sequence

import torch

from parareason.backends.embedded.decode_attention import DecodeReads
from parareason.backends.embedded.kernel_library import library, threads
from parareason.backends.embedded.kv_pool import KVPool
from parareason.backends.embedded.q8_kernel import padded_inputs
from parareason.backends.embedded.weights import Linear

_P = ctypes.c_void_p
DECODE_LAYERS = ("c", "python")  # model.decode_layers: one C call a step, or model.forward's loop
_ERRORS = {-1: (MemoryError, "no memory for the decode step's scratch"),
           -2: (ValueError, "decode attention in C takes a head_dim that is a multiple of 8 up to 1024"),
           -3: (ValueError, "the layers' shapes do not chain (qkv -> attention -> o -> gate_up -> down)")}


class _Weight(ctypes.Structure):
    """decode_layers.c's q8_weight."""
    _fields_ = [("tiles", _P), ("scales", _P), ("bias", _P), ("N", ctypes.c_int), ("K", ctypes.c_int),
                ("Kp", ctypes.c_int), ("ahead", _P), ("ahead_bytes", ctypes.c_long)]


class _Layer(ctypes.Structure):
    """decode_layers.c's decode_layer."""
    _fields_ = [(n, _Weight) for n in ("qkv", "o", "gate_up", "down")] + [(n, _P) for n in ("input_norm", "post_norm")]


def _weight(lin: Linear) -> _Weight:
    if lin.fmt != "q8":
        raise ValueError(f"decode layers in C take q8 weights, not {lin.fmt}")
    tiles, scales, bias = lin.q8_parts()
    addr, nbytes = lin.prefetch_after() or (None, 0)
    return _Weight(tiles.data_ptr(), scales.data_ptr(), None if bias is None else bias.data_ptr(),
                   scales.shape[0], lin.in_features, padded_inputs(lin.in_features), addr, nbytes)


class LayerArray:
    """Every decoder layer's weights in decode_layers.c's form, for one model."""

    def __init__(self, layers: Sequence, hidden: int, eps: float):
        self.hidden, self.eps = hidden, eps
        self._norms = [n.float().contiguous() for lw in layers for n in (lw.input_norm, lw.post_norm)]
        self._array = (_Layer * len(layers))()
        for i, lw in enumerate(layers):
            self._array[i] = _Layer(_weight(lw.qkv), _weight(lw.o), _weight(lw.gate_up), _weight(lw.down),
                                    self._norms[2 * i].data_ptr(), self._norms[2 * i + 1].data_ptr())

    def run(self, h: torch.Tensor, reads: DecodeReads, kv: KVPool, segs: Sequence[torch.Tensor] | None = None,
            lib: ctypes.CDLL | None = None) -> torch.Tensor:
        """h [B, 1, hidden] float32, the embeddings of the rows' new tokens -> the residual
        stream after the last layer (h itself, updated in place). segs: per layer, [B, D]
        float32 segment embeddings of the rows (ParaThinker), or None."""
        if h.dtype != torch.float32 or not h.is_contiguous() or h.shape[-1] != self.hidden:
            raise ValueError(f"decode layers in C take contiguous float32 rows of {self.hidden}")
        rows, n = h.numel() // self.hidden, len(self._array)
        if reads.batch.B != rows:
            raise ValueError(f"{rows} rows for reads of {reads.batch.B}")
        k, v = kv.k, kv.v
        if not (k.is_contiguous() and v.is_contiguous() and k.dtype == v.dtype == torch.float32
                and k.shape[0] == n and k.shape == v.shape):
            raise ValueError("decode layers in C take a float32 KV pool with one contiguous block per layer")
        seg_ptrs = None if segs is None else (_P * n)(*self._segment_pointers(segs, rows, reads.batch.D))
        failed = (lib or library()).decode_layers(self._array, n, ctypes.byref(reads.batch), h.data_ptr(),
                                                  self.hidden, self.eps, threads(), k.data_ptr(), v.data_ptr(),
                                                  k.stride(0), seg_ptrs)
        if failed:
            kind, why = _ERRORS.get(failed, (RuntimeError, f"decode layers failed ({failed})"))
            raise kind(why)
        return h

    def _segment_pointers(self, segs: Sequence[torch.Tensor | None], rows: int, head_dim: int) -> list[int | None]:
        if len(segs) != len(self._array):
            raise ValueError(f"{len(segs)} segment tables for {len(self._array)} layers")
        for seg in segs:
            if seg is not None and (seg.dtype != torch.float32 or not seg.is_contiguous()
                                    or seg.shape != (rows, head_dim)):
                raise ValueError(f"segment embeddings must be contiguous float32 [{rows}, {head_dim}]")
        return [None if seg is None else seg.data_ptr() for seg in segs]
