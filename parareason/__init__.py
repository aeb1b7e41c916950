"""parareason: adaptive parallel-reasoning decoding runtime.

The public API is imported lazily (`parareason.run`, `parareason.Engine`, ...), so
`import parareason` and `parareason --help` stay light.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "run": "parareason.api",
    "Engine": "parareason.api",
    "RunOptions": "parareason.api",
    "Result": "parareason.runtime.result",
    "ThreadRecord": "parareason.runtime.result",
    "Policy": "parareason.runtime.policy",
    "make_policy": "parareason.policies",
    "POLICY_NAMES": "parareason.policies",
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'parareason' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return __all__
