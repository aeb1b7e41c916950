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
kept, because it is exact for the dequantized GGUF weights.

A single timing on a busy machine can mislead (one probe under load read "float32 2 vs
bfloat16 1 GFLOPS"), so the probe runs `PROBE_ROUNDS` interleaved rounds and keeps each
dtype's best rate (load only ever slows a GEMM down), and the result is cached per CPU
model, torch version, thread count and GEMM shape in `<model cache>/dtype_probe.json`:
later processes on the same CPU reuse it (`PARAREASON_DTYPE_PROBE=fresh` measures again).
`describe()` prints what was measured and whether it came from the cache.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

AUTO = "auto"
DTYPE_ENV = "PARAREASON_DTYPE"  # auto | float32 | bfloat16 | float16, when no dtype is passed
DTYPE_ALIASES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                 "float16": "float16", "fp16": "float16"}
BF16_MIN_SPEEDUP = 1.5
PROBE_ROWS = 64  # a typical decode batch (n samples x a few prompts)
PROBE_ROUNDS = 3  # interleaved float32 / bfloat16 rounds; each dtype keeps its best
PROBE_ENV = "PARAREASON_DTYPE_PROBE"  # "fresh": ignore the cached probe result


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # resolved: float32 | bfloat16 | float16
    requested: str  # what the caller asked for (auto included)
    float32_gflops: float | None = None  # only measured for auto
    bfloat16_gflops: float | None = None
    cached: bool = False  # the rates came from an earlier probe on this CPU

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def describe(self) -> str:
        if self.float32_gflops is None or self.bfloat16_gflops is None:
            return f"{self.dtype} (requested)"
        source = "cached probe" if self.cached else f"best of {PROBE_ROUNDS} rounds"
        return (f"{self.dtype} (auto: GEMM float32 {self.float32_gflops:.0f} vs bfloat16 "
                f"{self.bfloat16_gflops:.0f} GFLOPS on this CPU, {source})")


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


def cpu_model() -> str:
    """The CPU's model name (the probe cache key: same model, same GEMM rates)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _probe_key(inner: int, outer: int) -> str:
    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | {inner}x{outer}"


def _probe_file() -> Path:
    from parareason.models import cache_root

    return cache_root() / "dtype_probe.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_probe_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again


def _write_cache(key: str, f32: float, bf16: float) -> None:
    path = _probe_file()
    data = _read_cache()
    data[key] = {"float32_gflops": round(f32, 1), "bfloat16_gflops": round(bf16, 1),
                 "measured_at": time.strftime("%Y-%m-%d")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # a read-only cache only costs a re-measurement next time


@functools.lru_cache(maxsize=8)
def _measure(inner: int, outer: int) -> tuple[float, float, bool]:
    """(float32, bfloat16) GFLOPS and whether they came from the cache."""
    key = _probe_key(inner, outer)
    if os.environ.get(PROBE_ENV, "").lower() != "fresh":
        hit = _read_cache().get(key)
        if isinstance(hit, dict) and hit.get("float32_gflops") and hit.get("bfloat16_gflops"):
            return float(hit["float32_gflops"]), float(hit["bfloat16_gflops"]), True
    f32 = bf16 = 0.0
    for _ in range(PROBE_ROUNDS):  # interleaved: a burst of load hits both dtypes alike
        f32 = max(f32, gemm_gflops(torch.float32, PROBE_ROWS, inner, outer))
        bf16 = max(bf16, gemm_gflops(torch.bfloat16, PROBE_ROWS, inner, outer))
    _write_cache(key, f32, bf16)
    return f32, bf16, False


def resolve_dtype(requested: str | None, hidden_size: int, intermediate_size: int,
                  float32_only: bool = False) -> DtypeChoice:
    """The dtype to load weights in. None reads PARAREASON_DTYPE (default auto).
    float32_only: auto means float32 without probing (packed weights take float32 input)."""
    name = (requested or os.environ.get(DTYPE_ENV) or AUTO).strip().lower()
    if name == AUTO and float32_only:
        return DtypeChoice("float32", requested=AUTO)
    if name != AUTO:
        if name not in DTYPE_ALIASES:
            raise ValueError(f"dtype must be auto or one of {sorted(DTYPE_ALIASES)}, not {name!r}")
        return DtypeChoice(DTYPE_ALIASES[name], requested=name)
    f32, bf16, cached = _measure(hidden_size, intermediate_size)
    chosen = "bfloat16" if bf16 >= BF16_MIN_SPEEDUP * f32 else "float32"
    return DtypeChoice(chosen, requested=AUTO, float32_gflops=f32, bfloat16_gflops=bf16, cached=cached)
