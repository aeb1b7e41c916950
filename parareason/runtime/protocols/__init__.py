"""Protocol registry: `get_protocol(name, dialect=..., **config)`.

Each protocol decides how a sample's threads are created and joined (see base.py).
A protocol speaks one of two dialects:

* `prompted`: our own markup and instructions, for instruct models; the default where no
  checkpoint is named;
* `trained`: the format a paper's released checkpoints were trained on (APR,
  ThreadWeaver, ParaThinker; each trained module cites the reference files it matches);
  the default when the model names a released checkpoint of the protocol
  (checkpoints.py). An explicit `dialect` always wins.
  `plain` has no markup, so its two dialects are the same.

Config values are checked here against the type of the protocol's own default for
the key (a marker must be a non-empty string, a count an integer in range), so a bad
value fails when the protocol is built, naming the key, not inside a thread.
"""
from __future__ import annotations

import importlib
import math
from typing import Any

from parareason.runtime.protocols.base import Protocol, ThreadOps
from parareason.runtime.protocols.checkpoints import checkpoint_protocol, default_dialect

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


# integer config key -> smallest accepted value (APR's `[-0:]` tail would keep all the text)
CONFIG_MIN: dict[str, int] = {"n_paths": 1, "result_max_chars": 1}


def check_config(name: str, defaults: dict[str, Any], config: dict[str, Any]) -> None:
    """ValueError naming the first config value whose type or range is wrong; unknown keys
    are left to the Protocol constructor (it lists them)."""
    for key, value in config.items():
        default = "" if key == "instructions" else defaults.get(key)
        where = f"protocol {name}: config {key!r}"
        if isinstance(default, str) and not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        if isinstance(default, str) and key != "instructions" and not value:
            raise ValueError(f"{where} must not be empty (an empty marker matches everywhere)")
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < CONFIG_MIN.get(key, 0):
                raise ValueError(f"{where} must be an integer >= {CONFIG_MIN.get(key, 0)}, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where} must be a finite number, got {value!r}")


def protocol_names() -> list[str]:
    return sorted(PROTOCOLS)


def with_default_dialect(name: str, model: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """`config` plus the dialect `model` implies (`trained` for a released checkpoint of
    protocol `name`); a given `dialect` is kept. Entry points resolve it where the model is
    known, so the options a request carries (and a run's fingerprint) say the dialect."""
    if "dialect" in config or default_dialect(name, model) == "prompted":
        return dict(config)
    return {**config, "dialect": "trained"}


def get_protocol(name: str, *, model: str | None = None, **config: Any) -> Protocol:
    """A fresh protocol; `config` holds its options (`dialect` picks the format; without
    one, the default for `model`: see with_default_dialect)."""
    dialect = config.pop("dialect") if "dialect" in config else default_dialect(name, model)
    protocol_class = _protocol_class(name, dialect)
    check_config(name.lower(), protocol_class.defaults, config)
    return protocol_class(**config)


def protocol_options(name: str, dialect: str) -> set[str]:
    """The option names protocol `name` takes in `dialect` (`dialect` itself included)."""
    return {"dialect", *_protocol_class(name, dialect).defaults}


def _protocol_class(name: str, dialect: str) -> type:
    if dialect not in DIALECTS:
        raise ValueError(f"protocol {name}: dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    target = (TRAINED if dialect == "trained" else PROTOCOLS).get(name.lower())
    if target is None:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(protocol_names())}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["DIALECTS", "PROTOCOLS", "TRAINED", "Protocol", "ThreadOps", "checkpoint_protocol", "default_dialect",
           "get_protocol", "protocol_names", "protocol_options", "with_default_dialect"]
