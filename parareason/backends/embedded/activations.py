"""The elementwise steps that feed the linear layers: RMSNorm and the SwiGLU gate.

Each linear layer of a decoder takes one of them as its input transform (weights.Linear's
`op`): q/k/v and gate/up take the RMSNorm of the residual stream, down takes the SwiGLU
of gate/up, the LM head the final RMSNorm. The q8 kernel runs the transform in C while it
quantizes the row (one pass, no temporary: ~30 us less per layer at batch 1 than these
torch ops); every other format runs the functions below.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

INPUT_OPS = ("plain", "rms_norm", "swiglu")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for gate/up fused along the last dimension."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def apply_input_op(x: torch.Tensor, op: str, norm_weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    if op == "rms_norm":
        assert norm_weight is not None
        return rms_norm(x, norm_weight, eps)
    if op == "swiglu":
        return swiglu(x)
    if op != "plain":
        raise ValueError(f"input op must be one of {INPUT_OPS}, not {op!r}")
    return x
