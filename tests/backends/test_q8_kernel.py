"""The q8 weight format's C kernel (q8_kernel.py, kernels/q8_linear.c): the arithmetic it
promises (llama.cpp Q8_0-style blocks), the same bits from its vector and plain C paths,
rows independent of their batch, odd shapes, and a clear error without a compiler."""
from __future__ import annotations

import pytest
import torch

from parareason.backends.embedded import q8_kernel
from parareason.backends.embedded.weights import Linear, check_weight_format

why_not = q8_kernel.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"q8 kernel unavailable: {why_not}")
PLAIN_C = tuple(f for f in q8_kernel.FLAGS if f != "-march=native")  # no vector intrinsics


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


def test_vector_and_plain_c_paths_agree_bitwise():
    x, w, b = _case(11, 256, 144, seed=1)
    tiles, scales = q8_kernel.pack(w)
    plain = q8_kernel.library(PLAIN_C)
    assert not q8_kernel.uses_vnni(plain)
    native = q8_kernel.linear(x, tiles, scales, b, 256)
    assert torch.equal(native, q8_kernel.linear(x, tiles, scales, b, 256, lib=plain))


def test_a_rows_result_does_not_depend_on_its_batch():
    x, w, b = _case(9, 192, 96, seed=2)
    tiles, scales = q8_kernel.pack(w)
    together = q8_kernel.linear(x, tiles, scales, b, 192)
    for r in range(9):
        alone = q8_kernel.linear(x[r:r + 1], tiles, scales, b, 192)
        assert torch.equal(alone[0], together[r])


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
    q8_kernel.library.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"weights q8 need a C compiler.*\$CC=/nonexistent/cc"):
            check_weight_format("q8", torch.float32)
    finally:
        monkeypatch.delenv("CC")
        q8_kernel.library.cache_clear()
