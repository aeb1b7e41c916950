"""Environment defaults this package sets for its own threads, kept from outside tools.

The embedded engine asks libgomp's threads to sleep between parallel regions
(OMP_WAIT_POLICY=PASSIVE, see backends/embedded/__init__.py) by setting the variable
before torch loads. Child processes inherit os.environ, so the llama.cpp and vLLM
anchors of `bench engine` would run under it too: llama-batched-bench, itself built on
libgomp, decoded 18.7 tok/s at n=1 under PASSIVE against 29.0 without (qwen2.5-0.5b-coder
Q4_K_M, Intel Xeon, 2 cores). `outside_env()` is the environment as the user set it.
Torch-free: the tools' build commands import it.
"""
from __future__ import annotations

import os
from typing import Mapping

OWN_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
_set_here: dict[str, str] = {}


def apply_defaults() -> None:
    """Set each of OWN_DEFAULTS the user has not set (effective only before torch loads)."""
    for name, value in OWN_DEFAULTS.items():
        if name not in os.environ:
            os.environ[name] = value
            _set_here[name] = value


def outside_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without the defaults this process set itself, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if _set_here.get(k) != v}
    env.update(extra or {})
    return env
