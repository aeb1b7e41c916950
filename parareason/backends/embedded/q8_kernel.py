"""The `q8` weight format's kernel: int8 x int8 products in C (kernel_library.py builds it).

torch ships no matmul that takes int8 weights and quantizes activations per row and
block (its fbgemm kernel shares one activation scale across the whole call, which the
MLP's down projection cannot take). `kernels/q8_linear.c` does, in llama.cpp's Q8_0
form: weights int8 with one scale per output row, activations int8 with one scale per
row and block of 32 inputs, int32 sums per block (AVX-512 VNNI `vpdpbusd` where the CPU
has it, else AVX2 `vpmaddubsw`, else plain C; all give the same bits), float sums across
blocks. Its threads are the kernels' pool (kernels/spin_pool.h: they spin ~2 ms between
calls, yield under load, and the caller never waits for one that is late), as many as
`kernel_library.threads()`.
"""
from __future__ import annotations

import ctypes

import torch

from parareason.backends.embedded.activations import INPUT_OPS
from parareason.backends.embedded.kernel_library import library, threads

BLOCK = 32  # inputs per activation scale
TILE = 64  # outputs per packed tile (4 groups of 16 lanes)


VECTOR_PATHS = ("plain C", "AVX2", "AVX-512 VNNI")


def vector_path(lib: ctypes.CDLL | None = None) -> str:
    """Which of VECTOR_PATHS the kernel was compiled with (by -march and the CPU)."""
    return VECTOR_PATHS[(lib or library()).q8_vector_path()]


def padded_inputs(k: int) -> int:
    return -(-k // BLOCK) * BLOCK


def pack(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float weight [N, K] -> (packed uint8 tiles, float32 scales [N]).

    Symmetric int8 per output row (scale = max |w| / 127), stored + 128 as unsigned bytes,
    laid out [N / 16, K / 4, 16, 4]: one 64-byte vector holds 4 inputs of 16 outputs.
    N pads to a multiple of 64 and K to a multiple of 32 with zero weights."""
    w = weight.float()
    n, k = w.shape
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
    codes = torch.clamp(torch.round(w / scales[:, None]), -127, 127).to(torch.int16) + 128
    kp, np_ = padded_inputs(k), -(-n // TILE) * TILE
    padded = torch.full((np_, kp), 128, dtype=torch.int16)
    padded[:n, :k] = codes
    tiles = padded.view(np_ // 16, 16, kp // 4, 4).permute(0, 2, 1, 3).contiguous().to(torch.uint8)
    return tiles, scales.contiguous()


# The input transforms fused into quantization, by their codes in the C file (Q8_PLAIN, ...).
OPS = {op: code for code, op in enumerate(INPUT_OPS)}
_RMS_NORM, _SWIGLU = OPS["rms_norm"], OPS["swiglu"]
_NOTHING_AHEAD = (None, 0)


def linear(x: torch.Tensor, tiles: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
           in_features: int, lib: ctypes.CDLL | None = None, *, op: str = "plain",
           norm_weight: torch.Tensor | None = None, eps: float = 0.0,
           ahead: tuple[int, int] | None = None) -> torch.Tensor:
    """op(x) @ W^T + bias: x [..., K] float32 -> [..., N] float32. op "rms_norm" normalizes
    each row first (`norm_weight` [K], `eps`, as activations.rms_norm); "swiglu" takes x
    [..., 2K] and uses silu(x[..., :K]) * x[..., K:] (activations.swiglu). ahead: (address,
    bytes) the kernel's idle threads prefetch after their share (the next layer's weights)."""
    code = OPS.get(op)
    if code is None:
        raise ValueError(f"input op must be one of {INPUT_OPS}, not {op!r}")
    cols = 2 * in_features if code == _SWIGLU else in_features
    if x.shape[-1] != cols:
        raise ValueError(f"q8 {op} input has {x.shape[-1]} columns, expected {cols}")
    if x.dtype != torch.float32 or not x.is_contiguous():  # ~1 us a call saved where it is (decode)
        x = x.float().contiguous()
    norm = None
    if code == _RMS_NORM:
        assert norm_weight is not None and norm_weight.numel() == in_features
        norm = norm_weight if norm_weight.dtype == torch.float32 and norm_weight.is_contiguous() \
            else norm_weight.float().contiguous()
    m, n = x.numel() // cols, scales.shape[0]
    y = torch.empty((*x.shape[:-1], n), dtype=torch.float32)
    failed = (lib or library()).q8_forward(
        tiles.data_ptr(), scales.data_ptr(), None if bias is None else bias.data_ptr(), x.data_ptr(), m,
        in_features, padded_inputs(in_features), code, None if norm is None else norm.data_ptr(), eps,
        y.data_ptr(), n, threads(), *(ahead or _NOTHING_AHEAD))
    if failed:
        raise MemoryError(f"q8 kernel: no memory for the quantized activations of {m} x {in_features}")
    return y
