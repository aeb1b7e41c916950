"""The q8 weight format's C kernel (q8_kernel.py, kernels/q8_linear.c): the arithmetic it
promises (llama.cpp Q8_0-style blocks), the same bits from its vector and plain C paths,
rows independent of their batch, odd shapes, the same bits on any number of its threads
(kernels/spin_pool.h) and from two callers at once or after a fork, and a clear error
without a compiler."""
from __future__ import annotations

import os
import pickle
import threading

import pytest
import torch

from parareason.backends.embedded import kernel_library, q8_kernel
from parareason.backends.embedded.activations import rms_norm, swiglu
from parareason.backends.embedded.weights import Linear, check_weight_format

why_not = kernel_library.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"q8 kernel unavailable: {why_not}")
PLAIN_C = tuple(f for f in kernel_library.FLAGS if f != "-march=native")  # no vector intrinsics


def _case(rows: int, inner: int, outer: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, inner, generator=g)
    x[:, 3] *= 40  # an outlier channel, as the MLP's down projection input has
    return x, torch.randn(outer, inner, generator=g) * 0.05, torch.randn(outer, generator=g)


def _reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The promised arithmetic, in float64: per-row int8 weights, per-(row, 32-block) int8
    activations rounded half to even, exact integer block sums."""
    k = x.shape[1]
    kp = q8_kernel.padded_inputs(k)
    ws = (w.abs().amax(1) / 127).clamp(min=1e-12)
    wq = torch.clamp(torch.round(w / ws[:, None]), -127, 127).double()
    xb = torch.nn.functional.pad(x, (0, kp - k)).view(x.shape[0], -1, 32)
    amax = xb.abs().amax(-1, keepdim=True)
    xs = amax / 127
    xq = torch.where(amax > 0, torch.clamp(torch.round(xb * (127 / amax)), -127, 127), 0).double()
    wqb = torch.nn.functional.pad(wq, (0, kp - k)).view(w.shape[0], -1, 32)
    dots = torch.einsum("mbi,nbi->mnb", xq, wqb)  # exact: integers far below 2**53
    return (dots * xs.double().squeeze(-1)[:, None, :]).sum(-1) * ws.double() + b.double()


@pytest.mark.parametrize("rows,inner,outer", [(1, 96, 80), (5, 128, 64), (7, 100, 130), (16, 64, 200)])
def test_kernel_computes_the_blockwise_int8_products(rows, inner, outer):
    x, w, b = _case(rows, inner, outer)
    tiles, scales = q8_kernel.pack(w)
    got = q8_kernel.linear(x, tiles, scales, b, inner)
    ref = _reference(x, w, b)
    assert got.shape == (rows, outer)
    # only the float32 rounding of the block sums and scales differs
    assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item()), (got - ref).abs().max()


@pytest.mark.parametrize("arch", ["native", "haswell"])  # haswell: AVX2 + FMA, no AVX-512
def test_vector_and_plain_c_paths_agree_bitwise(arch, monkeypatch):
    x, w, b = _case(11, 256, 144, seed=1)
    x[0, :32] = 127 * torch.sign(x[0, :32])  # full-scale codes: the AVX2 path's int16 pairs at their largest
    w[:5] = 0.05 * torch.sign(w[:5])
    tiles, scales = q8_kernel.pack(w)
    plain = kernel_library.library(PLAIN_C)
    assert q8_kernel.vector_path(plain) == "plain C"
    if arch == "haswell" and (os.uname().machine != "x86_64" or "avx2" not in kernel_library.cpu_flags().split()):
        pytest.skip("the AVX2 path needs an x86-64 CPU with AVX2")
    if arch == "haswell":  # what PARAREASON_KERNEL_MARCH=haswell builds
        monkeypatch.setenv(kernel_library.MARCH_ENV, "haswell")
    vector = kernel_library.library(kernel_library.machine_flags())
    if arch == "haswell":
        assert q8_kernel.vector_path(vector) == "AVX2"
    want = q8_kernel.linear(x, tiles, scales, b, 256, lib=plain)
    for rows in (11, 1, 2, 3, 4, 5):  # every tile height
        assert torch.equal(q8_kernel.linear(x[:rows], tiles, scales, b, 256, lib=vector), want[:rows])


def test_a_rows_result_does_not_depend_on_its_batch():
    x, w, b = _case(9, 192, 96, seed=2)
    tiles, scales = q8_kernel.pack(w)
    together = q8_kernel.linear(x, tiles, scales, b, 192)
    for r in range(9):
        alone = q8_kernel.linear(x[r:r + 1], tiles, scales, b, 192)
        assert torch.equal(alone[0], together[r])


def test_fused_rms_norm_and_swiglu_match_the_torch_steps():
    x, w, b = _case(6, 100, 72, seed=8)
    tiles, scales = q8_kernel.pack(w)
    norm = torch.rand(100) + 0.5
    fused = q8_kernel.linear(x, tiles, scales, b, 100, op="rms_norm", norm_weight=norm, eps=1e-6)
    apart = q8_kernel.linear(rms_norm(x, norm, 1e-6), tiles, scales, b, 100)
    # same codes unless a value sits on a rounding edge: the sum of squares is taken in double
    assert torch.allclose(fused, apart, rtol=1e-3, atol=1e-3 * apart.abs().max().item())
    gate_up = torch.randn(6, 200)
    fused = q8_kernel.linear(gate_up, tiles, scales, b, 100, op="swiglu")
    apart = q8_kernel.linear(swiglu(gate_up), tiles, scales, b, 100)
    assert torch.allclose(fused, apart, rtol=1e-3, atol=1e-3 * apart.abs().max().item())
    plain = kernel_library.library(PLAIN_C)  # the fused steps are plain C on both paths: same bits
    assert torch.equal(fused, q8_kernel.linear(gate_up, tiles, scales, b, 100, lib=plain, op="swiglu"))
    with pytest.raises(ValueError, match="expected 200"):
        q8_kernel.linear(x, tiles, scales, b, 100, op="swiglu")


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_any_number_of_threads_gives_the_same_bits(torch_threads):
    x, w, b = _case(20, 160, 64 * 37 + 5, seed=4)  # 38 tiles; 20 rows: quantized in parallel too
    tiles, scales = q8_kernel.pack(w)
    torch_threads(1)
    alone = q8_kernel.linear(x, tiles, scales, b, 160)
    for threads in (2, 3, 5):
        torch_threads(threads)
        for _ in range(20):  # many calls: workers sleeping, spinning, late
            assert torch.equal(q8_kernel.linear(x, tiles, scales, b, 160), alone)


def test_two_callers_at_once_each_get_their_own_result(torch_threads):
    torch_threads(2)
    cases = [_case(3, 128, 64 * 20, seed=s) for s in (5, 6)]
    packed = [q8_kernel.pack(w) for _, w, _ in cases]
    want = [q8_kernel.linear(x, *p, b, 128) for (x, _, b), p in zip(cases, packed)]
    bad: list[int] = []

    def call(i: int) -> None:  # ctypes drops the GIL: the two run in C together
        (x, _, b), p = cases[i], packed[i]
        for _ in range(200):
            if not torch.equal(q8_kernel.linear(x, *p, b, 128), want[i]):
                bad.append(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_a_forked_child_runs_the_kernel(torch_threads):
    torch_threads(2)
    x, w, b = _case(4, 96, 64 * 9, seed=7)
    tiles, scales = q8_kernel.pack(w)
    want = q8_kernel.linear(x, tiles, scales, b, 96)  # the parent's workers are started
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no workers until it starts its own
        try:
            os.write(write, pickle.dumps(q8_kernel.linear(x, tiles, scales, b, 96).tolist()))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        got = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert torch.equal(torch.tensor(got), want)


@pytest.mark.parametrize("env,value,message", [
    (kernel_library.SPIN_ENV, "lots", r"PARAREASON_KERNEL_SPIN_US must be a number"),
    (kernel_library.MARCH_ENV, "native; rm -rf /", r"PARAREASON_KERNEL_MARCH must name a CPU")])
def test_a_bad_kernel_setting_is_a_clear_error(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    kernel_library.library.cache_clear()
    try:
        with pytest.raises(ValueError, match=message):
            check_weight_format("q8", torch.float32)
    finally:
        monkeypatch.delenv(env)
        kernel_library.library.cache_clear()


def test_linear_q8_keeps_the_outlier_channel_that_int8_loses():
    x, w, b = _case(4, 256, 64, seed=3)
    ref = x @ w.T + b
    err = (Linear(w, b, "q8")(x) - ref).abs().max() / ref.abs().max()
    assert 0 < err < 0.01, err  # per-block activation scales: under 1% with a 40x outlier channel
    assert Linear(w, None, "q8").nbytes() == w.numel() + 4 * 64  # a byte a weight plus the row scales
    y = Linear(w, b, "q8")(x.view(2, 2, 256))  # leading dimensions kept, like F.linear
    assert y.shape == (2, 2, 64)


def test_no_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    kernel_library.library.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"weights q8 need the C kernels: .*needs a C compiler: \$CC=/nonexistent/cc"):
            check_weight_format("q8", torch.float32)
    finally:
        monkeypatch.delenv("CC")
        kernel_library.library.cache_clear()


def test_kernel_owns_the_cores_for_a_block_and_gives_them_back(torch_threads):
    torch_threads(2)
    x, w, b = _case(2, 64, 640, seed=9)
    tiles, scales = q8_kernel.pack(w)
    want = q8_kernel.linear(x, tiles, scales, b, 64)
    with pytest.raises(RuntimeError, match="inside"):
        with kernel_library.kernel_owns_the_cores(2):
            assert torch.get_num_threads() == 1  # torch's small ops
            assert torch.equal(q8_kernel.linear(x, tiles, scales, b, 64), want)  # the kernel on 2
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2
    assert kernel_library._threads is None


def test_reading_the_next_layer_ahead_changes_no_result(torch_threads):
    torch_threads(2)
    x, w, b = _case(3, 128, 64 * 12, seed=10)
    tiles, scales = q8_kernel.pack(w)
    nxt, _ = q8_kernel.pack(torch.randn(64 * 30, 128))
    want = q8_kernel.linear(x, tiles, scales, b, 128)
    for _ in range(50):  # idle workers prefetch `nxt` between the calls
        got = q8_kernel.linear(x, tiles, scales, b, 128, ahead=(nxt.data_ptr(), nxt.numel()))
        assert torch.equal(got, want)
    layer = Linear(w, b, "q8")
    layer.read_ahead(Linear(torch.randn(64, 128), None, "q8"))
    assert layer._ahead is not None and torch.equal(layer(x), want)
    full = Linear(w, b, "full")
    full.read_ahead(layer)  # only between q8 layers
    assert full._ahead is None


def test_the_bench_report_names_a_kernel_march(monkeypatch):
    from parareason.bench import report

    assert report.MARCH_ENV == kernel_library.MARCH_ENV
    monkeypatch.setenv(kernel_library.MARCH_ENV, "haswell")
    assert report.invoked_command().startswith("PARAREASON_KERNEL_MARCH=haswell ")
    assert report.machine_description().endswith("C kernels built with -march=haswell (PARAREASON_KERNEL_MARCH)")
