"""Policies: which samples live, for how long, and what the answer is.

`make_policy(name, **params)` builds one from its name and parameter values (the
fields of its params dataclass); `POLICY_NAMES` lists the names.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from parareason.policies.best_of_majority import BestOfMajority, BoMParams
from parareason.policies.confidence import DeepConf, DeepConfParams
from parareason.policies.ffs import FFSParams, FirstFinishSearch
from parareason.policies.multi_temperature import MultiTemperature, MultiTempParams
from parareason.policies.rpc import RPC, RPCParams
from parareason.policies.scale import Scale, ScaleParams
from parareason.policies.self_consistency import SelfConsistency, SelfConsistencyParams
from parareason.runtime.policy import Policy

# name -> (policy class, its params dataclass)
REGISTRY: dict[str, tuple[type[Policy], type]] = {
    "self_consistency": (SelfConsistency, SelfConsistencyParams),
    "ffs": (FirstFinishSearch, FFSParams),
    "deepconf": (DeepConf, DeepConfParams),
    "bom": (BestOfMajority, BoMParams),
    "multi_temp": (MultiTemperature, MultiTempParams),
    "rpc": (RPC, RPCParams),
    "scale": (Scale, ScaleParams),
}
ALIASES = {"sc": "self_consistency", "best_of_majority": "bom", "multi_temperature": "multi_temp",
           "confidence": "deepconf", "first_finish": "ffs"}
POLICY_NAMES: tuple[str, ...] = tuple(REGISTRY)


def _make_deepprune(params: dict[str, Any]) -> Policy:
    """DeepPrune lives in parareason.pruning (its owner's module); it is reachable here by
    name so that composite policies (SCALE's `nested`, SC's `inner`) can run it. Imported
    lazily: the judge it builds is heavy. Our common `n` maps to its `width`;
    `max_new_tokens` is dropped (DeepPrune samples use the request's setting)."""
    from parareason.pruning.deepprune import DeepPruneParams, DeepPrunePolicy

    params = dict(params)
    if "n" in params:
        params["width"] = params.pop("n")
    params.pop("max_new_tokens", None)
    return DeepPrunePolicy(DeepPruneParams(**params))


# Policies owned by other packages, buildable by name but not listed in POLICY_NAMES.
EXTERNAL = {"deepprune": _make_deepprune}


def policy_params(name: str) -> list[str]:
    """The parameter names `make_policy(name, ...)` accepts."""
    _, params_cls = REGISTRY[ALIASES.get(name, name)]
    return [f.name for f in dataclasses.fields(params_cls)]


def make_policy(name: str, **params: Any) -> Policy:
    """Build policy `name`; unknown names or parameters raise ValueError/TypeError."""
    key = ALIASES.get(name, name)
    if key in EXTERNAL:
        return EXTERNAL[key](params)
    if key not in REGISTRY:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    policy_cls, params_cls = REGISTRY[key]
    allowed = set(policy_params(key))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TypeError(f"policy {key!r} has no parameter(s) {unknown}; it takes {sorted(allowed)}")
    if "temperatures" in params and params["temperatures"] is not None:
        params["temperatures"] = tuple(float(t) for t in params["temperatures"])
    return policy_cls(params_cls(**params))


__all__ = ["POLICY_NAMES", "REGISTRY", "make_policy", "policy_params", "SelfConsistency",
           "FirstFinishSearch", "DeepConf", "BestOfMajority", "MultiTemperature", "RPC", "Scale"]
