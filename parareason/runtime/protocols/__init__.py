"""Protocol registry: `get_protocol(name, **config)`.

Each protocol decides how a sample's threads are created and joined (see base.py).
"""
from __future__ import annotations

import importlib
from typing import Any

from parareason.runtime.protocols.base import Protocol, ThreadOps

# name -> "module:class", imported on first use
PROTOCOLS: dict[str, str] = {
    "plain": "parareason.runtime.protocols.plain:PlainProtocol",
    "apr": "parareason.runtime.protocols.apr:APRProtocol",
    "threadweaver": "parareason.runtime.protocols.threadweaver:ThreadWeaverProtocol",
    "parathinker": "parareason.runtime.protocols.parathinker:ParaThinkerProtocol",
}


def protocol_names() -> list[str]:
    return sorted(PROTOCOLS)


def get_protocol(name: str, **config: Any) -> Protocol:
    target = PROTOCOLS.get(name.lower())
    if target is None:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(protocol_names())}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**config)


__all__ = ["PROTOCOLS", "Protocol", "ThreadOps", "get_protocol", "protocol_names"]
