"""Protocol registry: `get_protocol(name, dialect=..., **config)`.

Each protocol decides how a sample's threads are created and joined (see base.py).
A protocol speaks one of two dialects:

* `prompted` (the default): our own markup and instructions, for instruct models;
* `trained`: the format a paper's released checkpoints were trained on (APR,
  ThreadWeaver, ParaThinker; each trained module cites the reference files it matches).
  `plain` has no markup, so its two dialects are the same.
"""
from __future__ import annotations

import importlib
from typing import Any

from parareason.runtime.protocols.base import Protocol, ThreadOps

DIALECTS = ("prompted", "trained")

# name -> "module:class", imported on first use
PROTOCOLS: dict[str, str] = {
    "plain": "parareason.runtime.protocols.plain:PlainProtocol",
    "apr": "parareason.runtime.protocols.apr:APRProtocol",
    "threadweaver": "parareason.runtime.protocols.threadweaver:ThreadWeaverProtocol",
    "parathinker": "parareason.runtime.protocols.parathinker:ParaThinkerProtocol",
}
TRAINED: dict[str, str] = {
    "plain": PROTOCOLS["plain"],
    "apr": "parareason.runtime.protocols.apr_trained:APRTrainedProtocol",
    "threadweaver": "parareason.runtime.protocols.threadweaver_trained:ThreadWeaverTrainedProtocol",
    "parathinker": "parareason.runtime.protocols.parathinker_trained:ParaThinkerTrainedProtocol",
}


def protocol_names() -> list[str]:
    return sorted(PROTOCOLS)


def get_protocol(name: str, **config: Any) -> Protocol:
    """A fresh protocol; `config` holds its options (`dialect` picks the format)."""
    dialect = config.pop("dialect", "prompted")
    if dialect not in DIALECTS:
        raise ValueError(f"protocol {name}: dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    target = (TRAINED if dialect == "trained" else PROTOCOLS).get(name.lower())
    if target is None:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(protocol_names())}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**config)


__all__ = ["DIALECTS", "PROTOCOLS", "TRAINED", "Protocol", "ThreadOps", "get_protocol", "protocol_names"]
