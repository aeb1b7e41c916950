"""The embedded engine's C kernels: built on this machine, loaded with ctypes, one pool of threads.

`kernels/kernels.c` includes every kernel (q8_linear.c: the q8 weight format's matmul;
decode_attention.c: decode attention with RoPE and the KV write; decode_layers.c: a
decode step's decoder layers in one call; sampling.c: one token per row from the logits)
into one translation
unit, so that they share `kernels/spin_pool.h`'s one pool of worker threads: two pools
on the same two cores would fight (`kernel_owns_the_cores`).

It is compiled once per machine with the system C compiler (`cc`, or $CC) and
`-march=native` (or `-march=$PARAREASON_KERNEL_MARCH`, e.g. haswell: an AVX2-only CPU's
code measured on a newer one) into the cache (`$PARAREASON_CACHE/kernels`), under a name
that hashes the sources, the flags, the compiler and the CPU's flags; a changed CPU or
source builds anew. No compiler: `available()` says why; the q8 format then refuses to
load and attention runs in torch.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch

KERNELS = Path(__file__).with_name("kernels")
SOURCE = KERNELS / "kernels.c"
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-pthread", "-shared", "-fPIC")
MARCH_ENV = "PARAREASON_KERNEL_MARCH"  # -march=<it> instead of native (read at first use)
SPIN_ENV = "PARAREASON_KERNEL_SPIN_US"  # how long idle kernel threads poll before sleeping
DEFAULT_SPIN_US = 2000
_P = ctypes.c_void_p


class KernelUnavailable(RuntimeError):
    pass


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def _sources() -> list[Path]:
    """kernels.c and every file it includes: all part of the build's key."""
    return sorted(p for p in KERNELS.iterdir() if p.suffix in (".c", ".h"))


def _compiler() -> str:
    asked = os.environ.get("CC")
    cc = shutil.which(asked) if asked else (shutil.which("cc") or shutil.which("gcc"))
    if not cc:
        raise KernelUnavailable(f"building the C kernels ({SOURCE.name}) needs a C compiler: "
                                + (f"$CC={asked} is not a program" if asked else "no cc or gcc on PATH"))
    return cc


def _library_path(cc: str, flags: tuple[str, ...]) -> Path:
    from parareason.models import cache_root

    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    texts = [f"{f.name}\0{f.read_text()}" for f in _sources()]
    key = hashlib.sha256("\0".join([*texts, " ".join(flags), version, cpu_flags()]).encode())
    return cache_root() / "kernels" / f"kernels-{key.hexdigest()[:16]}.so"


def _build(cc: str, flags: tuple[str, ...], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # then one rename: no half-written .so
        tmp_so = Path(tmp) / out.name
        done = subprocess.run([cc, *flags, str(SOURCE), "-o", str(tmp_so), "-lm"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelUnavailable(f"building {SOURCE.name} with {cc} failed:\n{done.stderr[-2000:]}")
        os.replace(tmp_so, out)


def machine_flags() -> tuple[str, ...]:
    """FLAGS, with -march=$PARAREASON_KERNEL_MARCH when that is set."""
    march = os.environ.get(MARCH_ENV, "").strip()
    if not march:
        return FLAGS
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", march):
        raise KernelUnavailable(f"{MARCH_ENV} must name a CPU for -march= (e.g. haswell), not {march!r}")
    return tuple(f"-march={march}" if f == "-march=native" else f for f in FLAGS)


@lru_cache(maxsize=None)
def library(flags: tuple[str, ...] | None = None) -> ctypes.CDLL:
    """The kernels compiled with `flags` (default: machine_flags(); built on first use).
    Raises KernelUnavailable. Tests build them without -march=native too: the plain C
    paths, which must agree bitwise."""
    if flags is None:
        return library(machine_flags())
    cc = _compiler()
    path = _library_path(cc, flags)
    if not path.exists():
        _build(cc, flags, path)
    lib = ctypes.CDLL(str(path))
    i32, i64, f32 = ctypes.c_int, ctypes.c_long, ctypes.c_float
    lib.q8_forward.argtypes = [_P, _P, _P, _P, i32, i32, i32, i32, _P, f32, _P, i32, i32, _P, i64]
    lib.q8_forward.restype = i32
    lib.q8_vector_path.restype = i32
    lib.attn_decode.argtypes = [_P, _P, i64, _P, _P, _P, _P]
    lib.attn_decode.restype = i32
    lib.decode_layers.argtypes = [_P, i32, _P, _P, i32, f32, i32, _P, _P, i64, _P]
    lib.decode_layers.restype = i32
    lib.sample_rows.argtypes = [_P, i32, i32, _P, _P, _P, _P, _P, _P, i32]
    lib.sample_rows.restype = None
    lib.sample_max_top.restype = i32
    lib.q8_set_spin_ns.argtypes = [i64]
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
    """None when the kernels build and load here, else why not."""
    try:
        library()
    except (KernelUnavailable, OSError) as e:
        return str(e)
    return None


_threads: int | None = None  # the kernels' threads inside kernel_owns_the_cores(); else torch's count


def threads() -> int:
    """How many threads a kernel call runs on now."""
    return _threads or torch.get_num_threads()


@contextmanager
def kernel_owns_the_cores(n: int) -> Iterator[None]:
    """Run the block with the kernels on `n` threads and torch's own ops on one.

    Two pools on the same cores fight: torch's libgomp workers wake for an elementwise op
    while the kernel's workers still spin for the next matmul, and a batch-1 decode step
    took 37 ms with both on 2 threads against 24 ms with torch on 1 (qwen2.5-0.5b-coder q8,
    Intel Xeon, 2 cores; at 64 rows 288 vs 250 ms: torch's ops at these sizes gained
    nothing from a second thread even with the kernel's workers asleep, 282 vs 260 ms)."""
    global _threads
    before_torch, before = torch.get_num_threads(), _threads
    _threads = n
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        _threads = before
