"""Choose the engine's compute dtype by measuring this CPU, not by assumption.

Whether bfloat16 pays off depends on the processor. Measured with torch 2.13 on 2
threads, one GEMM of the decode step's shape (64 rows x 896 -> 4864):
  * AMD EPYC (no bf16 instructions): float32 ~43-75 GFLOPS, bfloat16 ~20: bf16 is
    3x slower, so float32 wins;
  * Intel Xeon with AMX (amx_bf16): float32 220 GFLOPS, bfloat16 932: bf16 is 4x
    faster, and a whole 64-row decode step of qwen2.5-0.5b-coder went from 564 ms
    to 285 ms.
So `dtype="auto"` times both dtypes on a GEMM shaped like the model's MLP and takes
bfloat16 only when it is clearly faster (`BF16_MIN_SPEEDUP`); near a tie float32 is
kept, because it is exact for the dequantized GGUF weights. The choice is made once
per process and model shape (~0.1-0.3 s).
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import torch

AUTO = "auto"
DTYPE_ENV = "PARAREASON_DTYPE"  # auto | float32 | bfloat16 | float16, when no dtype is passed
DTYPE_ALIASES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                 "float16": "float16", "fp16": "float16"}
BF16_MIN_SPEEDUP = 1.5
PROBE_ROWS = 64  # a typical decode batch (n samples x a few prompts)


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # resolved: float32 | bfloat16 | float16
    requested: str  # what the caller asked for (auto included)
    float32_gflops: float | None = None  # only measured for auto
    bfloat16_gflops: float | None = None

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def describe(self) -> str:
        if self.float32_gflops is None or self.bfloat16_gflops is None:
            return f"{self.dtype} (requested)"
        return (f"{self.dtype} (auto: GEMM float32 {self.float32_gflops:.0f} vs bfloat16 "
                f"{self.bfloat16_gflops:.0f} GFLOPS on this CPU)")


def gemm_gflops(dtype: torch.dtype, rows: int, inner: int, outer: int, reps: int = 5) -> float:
    """Best-of-`reps` FLOP rate of x[rows, inner] @ w[outer, inner]^T (best-of: robust to a busy machine)."""
    x = torch.randn(rows, inner).to(dtype)
    w = torch.randn(outer, inner).to(dtype)
    torch.nn.functional.linear(x, w)  # warm-up: kernel selection, first-touch pages
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * rows * inner * outer / max(best, 1e-9) / 1e9


@functools.lru_cache(maxsize=8)
def _measure(inner: int, outer: int) -> tuple[float, float]:
    return (gemm_gflops(torch.float32, PROBE_ROWS, inner, outer),
            gemm_gflops(torch.bfloat16, PROBE_ROWS, inner, outer))


def resolve_dtype(requested: str | None, hidden_size: int, intermediate_size: int) -> DtypeChoice:
    """The dtype to load weights in. None reads PARAREASON_DTYPE (default auto)."""
    name = (requested or os.environ.get(DTYPE_ENV) or AUTO).strip().lower()
    if name != AUTO:
        if name not in DTYPE_ALIASES:
            raise ValueError(f"dtype must be auto or one of {sorted(DTYPE_ALIASES)}, not {name!r}")
        return DtypeChoice(DTYPE_ALIASES[name], requested=name)
    f32, bf16 = _measure(hidden_size, intermediate_size)
    chosen = "bfloat16" if bf16 >= BF16_MIN_SPEEDUP * f32 else "float32"
    return DtypeChoice(chosen, requested=AUTO, float32_gflops=f32, bfloat16_gflops=bf16)
