"""The `q8` weight format's kernel: int8 x int8 products in C, built on this machine.

torch ships no matmul that takes int8 weights and quantizes activations per row and
block (its fbgemm kernel shares one activation scale across the whole call, which the
MLP's down projection cannot take). `kernels/q8_linear.c` does, in llama.cpp's Q8_0
form: weights int8 with one scale per output row, activations int8 with one scale per
row and block of 32 inputs, int32 sums per block (AVX-512 VNNI `vpdpbusd` where the CPU
has it, else AVX2 `vpmaddubsw`, else plain C; all give the same bits), float sums across
blocks. Its threads are its own (kernels/spin_pool.h: they spin ~2 ms between calls, yield
under load, and the caller never waits for one that is late), as many as torch's
intra-op threads.

The C file is compiled once per machine with the system C compiler (`cc`, or $CC) and
`-march=native`, into the cache (`$PARAREASON_CACHE/kernels`), under a name that hashes
the source, the flags, the compiler and the CPU's flags; a changed CPU or source builds
anew. No compiler: `available()` says why, and the format refuses to load.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch

from parareason.backends.embedded.activations import INPUT_OPS

SOURCE = Path(__file__).with_name("kernels") / "q8_linear.c"
HEADERS = (SOURCE.with_name("spin_pool.h"),)  # included by SOURCE: part of the build's key
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-pthread", "-shared", "-fPIC")
SPIN_ENV = "PARAREASON_KERNEL_SPIN_US"  # how long idle kernel threads poll before sleeping
DEFAULT_SPIN_US = 2000
BLOCK = 32  # inputs per activation scale
TILE = 64  # outputs per packed tile (4 groups of 16 lanes)
_P = ctypes.c_void_p


class KernelUnavailable(RuntimeError):
    pass


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def _compiler() -> str:
    asked = os.environ.get("CC")
    cc = shutil.which(asked) if asked else (shutil.which("cc") or shutil.which("gcc"))
    if not cc:
        raise KernelUnavailable(f"weights q8 need a C compiler to build {SOURCE.name}: "
                                + (f"$CC={asked} is not a program" if asked else "no cc or gcc on PATH"))
    return cc


def _library_path(cc: str, flags: tuple[str, ...]) -> Path:
    from parareason.models import cache_root

    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    texts = [f.read_text() for f in (SOURCE, *HEADERS)]
    key = hashlib.sha256("\0".join([*texts, " ".join(flags), version, _cpu_flags()]).encode())
    return cache_root() / "kernels" / f"q8_linear-{key.hexdigest()[:16]}.so"


def _build(cc: str, flags: tuple[str, ...], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # then one rename: no half-written .so
        tmp_so = Path(tmp) / out.name
        done = subprocess.run([cc, *flags, str(SOURCE), "-o", str(tmp_so), "-lm"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelUnavailable(f"building {SOURCE.name} with {cc} failed:\n{done.stderr[-2000:]}")
        os.replace(tmp_so, out)


@lru_cache(maxsize=None)
def library(flags: tuple[str, ...] = FLAGS) -> ctypes.CDLL:
    """The kernel compiled with `flags` (built on first use). Raises KernelUnavailable.
    Tests build it without -march=native too: the plain C path, which must agree bitwise."""
    cc = _compiler()
    path = _library_path(cc, flags)
    if not path.exists():
        _build(cc, flags, path)
    lib = ctypes.CDLL(str(path))
    i32 = ctypes.c_int
    lib.q8_forward.argtypes = [_P, _P, _P, _P, i32, i32, i32, i32, _P, ctypes.c_float, _P, i32, i32, _P,
                               ctypes.c_long]
    lib.q8_forward.restype = i32
    lib.q8_vector_path.restype = ctypes.c_int
    lib.q8_set_spin_ns.argtypes = [ctypes.c_long]
    lib.q8_set_spin_ns(int(1000 * _spin_us()))
    return lib


def _spin_us() -> float:
    raw = os.environ.get(SPIN_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_SPIN_US
    except ValueError:
        raise KernelUnavailable(f"{SPIN_ENV} must be a number of microseconds, not {raw!r}") from None
    if value < 0:
        raise KernelUnavailable(f"{SPIN_ENV} must be >= 0, not {raw!r}")
    return value


def available() -> str | None:
    """None when the kernel builds and loads here, else why not."""
    try:
        library()
    except (KernelUnavailable, OSError) as e:
        return str(e)
    return None


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


_threads: int | None = None  # the kernel's threads inside kernel_owns_the_cores(); else torch's count


@contextmanager
def kernel_owns_the_cores(threads: int) -> Iterator[None]:
    """Run the block with the kernel on `threads` threads and torch's own ops on one.

    Two pools on the same cores fight: torch's libgomp workers wake for an elementwise op
    while the kernel's workers still spin for the next matmul, and a batch-1 decode step
    took 37 ms with both on 2 threads against 24 ms with torch on 1 (qwen2.5-0.5b-coder q8,
    Intel Xeon, 2 cores; at 64 rows 288 vs 250 ms: torch's ops at these sizes gained
    nothing from a second thread even with the kernel's workers asleep, 282 vs 260 ms)."""
    global _threads
    before_torch, before = torch.get_num_threads(), _threads
    _threads = threads
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        _threads = before


# The input transforms fused into quantization, by their codes in the C file (Q8_PLAIN, ...).
OPS = {op: code for code, op in enumerate(INPUT_OPS)}


def linear(x: torch.Tensor, tiles: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
           in_features: int, lib: ctypes.CDLL | None = None, *, op: str = "plain",
           norm_weight: torch.Tensor | None = None, eps: float = 0.0,
           ahead: tuple[int, int] | None = None) -> torch.Tensor:
    """op(x) @ W^T + bias: x [..., K] float32 -> [..., N] float32. op "rms_norm" normalizes
    each row first (`norm_weight` [K], `eps`, as activations.rms_norm); "swiglu" takes x
    [..., 2K] and uses silu(x[..., :K]) * x[..., K:] (activations.swiglu). ahead: (address,
    bytes) the kernel's idle threads prefetch after their share (the next layer's weights)."""
    if op not in OPS:
        raise ValueError(f"input op must be one of {INPUT_OPS}, not {op!r}")
    lib = lib or library()
    lead = x.shape[:-1]
    cols = 2 * in_features if op == "swiglu" else in_features
    if x.shape[-1] != cols:
        raise ValueError(f"q8 {op} input has {x.shape[-1]} columns, expected {cols}")
    x2 = x.reshape(-1, cols).float().contiguous()
    norm = None
    if op == "rms_norm":
        assert norm_weight is not None and norm_weight.numel() == in_features
        norm = norm_weight.float().contiguous()
    m, n = x2.shape[0], scales.shape[0]
    y = torch.empty((m, n), dtype=torch.float32)
    failed = lib.q8_forward(tiles.data_ptr(), scales.data_ptr(), None if bias is None else bias.data_ptr(),
                            x2.data_ptr(), m, in_features, padded_inputs(in_features), OPS[op],
                            None if norm is None else norm.data_ptr(), eps, y.data_ptr(), n,
                            _threads or torch.get_num_threads(), *(ahead or (None, 0)))
    if failed:
        raise MemoryError(f"q8 kernel: no memory for the quantized activations of {m} x {in_features}")
    return y.view(*lead, n)
