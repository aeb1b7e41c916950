"""Weight formats of the embedded engine's linear layers: float32, float16, int8, q8.

A decode step on CPU is mostly matmuls (86% of a batch-1 step, 80% at batch 64, torch
profiler on qwen2.5-0.5b-coder), and at small batches a matmul is bound by reading its
weights. torch ships fbgemm kernels that read smaller weights; one [64 x 896] @ [896 x
9728] GEMM (the MLP's gate/up), torch 2.13 on 2 cores of an AMD EPYC (AVX2), in ms:

    rows   float32 F.linear   float16 weights (fbgemm)   int8 weights (fbgemm dynamic)
    1      3.9-4.5            0.5-1.0                    0.35-0.39
    16     14-16              4.0-4.3                    1.5-1.6
    64     25-28              10-12                      6.5-6.7

(torch's weight-only int8 / int4 kernels `_weight_int8pack_mm` / `_weight_int4pack_mm`
need bfloat16 activations to be fast, which this CPU computes slowly: 0.7 / 23 ms at 1 /
64 rows for int4, 6.6 / 505 ms for int8 with float32 input; so they are not offered.)

* `full`: F.linear on the weights in the compute dtype (`--dtype`): the exact reference
  in float32.
* `float16`: weights stored in float16, products and sums in float32
  (`quantized.linear_dynamic_fp16`). Lossless for weights that are bfloat16 values in
  float16's range; the shipped GGUFs' dequantized Q4 weights round at ~5e-4 relative.
* `int8`: symmetric per-output-channel int8 weights; activations quantized to 7-bit
  uint8 per call (`quantized.linear_dynamic`, reduce_range: fbgemm's AVX2 kernel sums
  pairs of u8 x s8 products in int16, which 8-bit inputs can saturate). The activation
  scale is shared by all rows of a call, so a row's numbers depend on its batch mates
  (like bfloat16's, but larger): seeded samples repeat only with the same batch.
  The MLP's down projection stays float16 (`INT8_KEEPS_FLOAT16`): its input,
  silu(gate) * up, has outlier channels that one per-tensor scale cannot cover. Mean
  |logprob difference| to full on a 75-token GSM8K answer, qwen2.5-0.5b-coder: every
  layer int8 0.53 (smollm2-135m: 1.39), down in float16 0.13 (0.42); SmoothQuant-style
  channel scaling of the down input (alpha 0.5-0.85) only reached 0.35.

* `q8`: int8 weights per output row, activations int8 per row and block of 32 inputs
  (llama.cpp's Q8_0), in this project's own kernel (q8_kernel.py, built on this machine).
  Per-block activation scales take the down projection's outlier channels, so every layer
  is int8, and a row's numbers do not depend on its batch mates. qwen2.5-0.5b-coder, the
  same fixed text: KL to full 0.0005 a token against int8's 0.0115; all its linear layers
  at batch 1 take 17.7 ms a step against int8's 22.7 (fbgemm reads at about the same rate;
  q8 reads 496 MB, int8 599 MB), 47 vs 52 ms at 16 rows, 158 vs 189 ms at 64 (AVX-512 EPYC).

The embedding table stays float32 (a lookup reads one row); a tied LM head gets its own
packed copy.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F

from parareason.backends.embedded import kernel_library, q8_kernel
from parareason.backends.embedded.activations import apply_input_op

WEIGHT_FORMATS = ("full", "float16", "int8", "q8")
PACKED_FORMATS = ("float16", "int8", "q8")  # take float32 activations
FBGEMM_FORMATS = ("float16", "int8")
WEIGHTS_ENV = "PARAREASON_WEIGHTS"  # the format when none is passed (default full)
INT8_KEEPS_FLOAT16 = ("down",)  # layer kinds int8 leaves in float16 (see above)
PREFETCH_BYTES = 1 << 20  # of the next layer's q8 weights, read ahead between calls (Linear.read_ahead)


def layer_format(weights: str, kind: str) -> str:
    """The format of one kind of linear layer (qkv, o, gate_up, down, lm_head) under `weights`."""
    return "float16" if weights == "int8" and kind in INT8_KEEPS_FLOAT16 else weights


class Linear:
    """y = op(x) @ W^T + b in one weight format; op (activations.py) is the input transform,
    fused into the q8 kernel, run in torch for the other formats."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, fmt: str = "full"):
        if fmt not in WEIGHT_FORMATS:
            raise ValueError(f"weight format must be one of {WEIGHT_FORMATS}, not {fmt!r}")
        self.fmt = fmt
        self.out_features, self.in_features = weight.shape
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self._packed: Any = None
        self._ahead: tuple[int, int] | None = None  # q8: what to prefetch after this layer
        if fmt == "full":
            self.weight, self.bias = weight.contiguous(), bias
            return
        w = weight.float().contiguous()
        b = None if bias is None else bias.float().contiguous()
        if fmt == "q8":
            self._packed = (*q8_kernel.pack(w), b)
        elif fmt == "float16":
            self._packed = torch.ops.quantized.linear_prepack_fp16(w, b)
        else:
            self._packed = torch.ops.quantized.linear_prepack(_int8_per_channel(w), b)

    def __call__(self, x: torch.Tensor, op: str = "plain", norm_weight: torch.Tensor | None = None,
                 eps: float = 0.0) -> torch.Tensor:
        if self.fmt == "q8":
            return q8_kernel.linear(x, *self._packed, self.in_features, op=op, norm_weight=norm_weight, eps=eps,
                                    ahead=self._ahead)
        x = apply_input_op(x, op, norm_weight, eps)
        if self._packed is None:
            return F.linear(x, self.weight, self.bias)
        if self.fmt == "float16":
            return torch.ops.quantized.linear_dynamic_fp16(x, self._packed)
        return torch.ops.quantized.linear_dynamic(x, self._packed, True)

    def read_ahead(self, following: "Linear") -> None:
        """q8: after each call the kernel's idle threads prefetch the start of `following`'s
        weights (up to PREFETCH_BYTES), the layer called next, while Python runs between."""
        if self.fmt == "q8" and following.fmt == "q8":
            tiles = following._packed[0]
            self._ahead = (tiles.data_ptr(), min(tiles.numel(), PREFETCH_BYTES))

    def q8_parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """q8: (packed tiles, scales [N], float32 bias [N] or None), as q8_kernel.linear takes them."""
        if self.fmt != "q8":
            raise ValueError(f"a {self.fmt} layer has no q8 parts")
        return self._packed

    def prefetch_after(self) -> tuple[int, int] | None:
        """q8: (address, bytes) the kernel's idle threads prefetch after this layer (read_ahead)."""
        return self._ahead

    def nbytes(self) -> int:
        """Bytes the weights occupy (what one call streams from memory)."""
        if self.fmt == "q8":
            return self._packed[0].numel() + 4 * self.out_features
        per = {"float16": 2, "int8": 1}.get(self.fmt)
        if per is None:
            assert self.weight is not None
            return self.weight.numel() * self.weight.element_size()
        return self.out_features * self.in_features * per


def _int8_per_channel(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output row: scale = max |w| / 127."""
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
    zeros = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch marks quantized tensors deprecated; the kernels remain
        warnings.simplefilter("ignore")
        return torch.quantize_per_channel(w, scales, zeros, 0, torch.qint8)


def check_weight_format(fmt: str, compute_dtype: torch.dtype) -> None:
    """Refuse a format this torch build or compute dtype cannot run, before loading."""
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}, not {fmt!r}")
    if fmt == "q8" and (why := kernel_library.available()) is not None:
        raise ValueError(f"weights q8 need the C kernels: {why}")
    if fmt in PACKED_FORMATS:
        if fmt in FBGEMM_FORMATS and "fbgemm" not in torch.backends.quantized.supported_engines:
            raise ValueError(f"weights {fmt} need torch's fbgemm kernels (x86), absent here; use full")
        if compute_dtype != torch.float32:
            raise ValueError(f"weights {fmt} compute in float32 (the kernels take float32 activations); "
                             f"use --dtype float32 or auto, not {str(compute_dtype).removeprefix('torch.')}")
