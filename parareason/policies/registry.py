"""Policy registry: every policy name, its class and its params dataclass, in one table.

Entries are "module:attribute" strings imported on first use, so listing the names
(for `--help`, the server's model suffixes, an error message) never imports a policy,
and a policy owned by another package (DeepPrune, in `parareason.pruning`) is listed
like the others. Adding a policy is one module plus one `PolicySpec` line here.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PolicySpec:
    name: str
    policy: str  # "module:Class" of the Policy
    params: str  # "module:Class" of its params dataclass
    aliases: tuple[str, ...] = ()
    width_param: str = "n"  # the parameter the common sample count (`n`) sets
    ignored: tuple[str, ...] = ()  # common overrides this policy does not take (dropped, not refused)
    preset: tuple[tuple[str, Any], ...] = ()  # parameters a named variant fixes (given values win)

    def policy_class(self) -> type:
        return _load(self.policy)

    def params_class(self) -> type:
        return _load(self.params)


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


_P = "parareason.policies."
POLICIES: dict[str, PolicySpec] = {s.name: s for s in (
    PolicySpec("self_consistency", _P + "self_consistency:SelfConsistency",
               _P + "self_consistency:SelfConsistencyParams", aliases=("sc",)),
    PolicySpec("ffs", _P + "ffs:FirstFinishSearch", _P + "ffs:FFSParams", aliases=("first_finish",)),
    PolicySpec("deepconf", _P + "confidence:DeepConf", _P + "confidence:DeepConfParams",
               aliases=("confidence",)),
    # The paper's two named settings (DeepConf, Fu et al. 2025): keep the top 10% / 90%.
    PolicySpec("deepconf_low", _P + "confidence:DeepConf", _P + "confidence:DeepConfParams",
               aliases=("deepconf-low",), preset=(("variant", "low"),)),
    PolicySpec("deepconf_high", _P + "confidence:DeepConf", _P + "confidence:DeepConfParams",
               aliases=("deepconf-high",), preset=(("variant", "high"),)),
    PolicySpec("bom", _P + "best_of_majority:BestOfMajority", _P + "best_of_majority:BoMParams",
               aliases=("best_of_majority",)),
    PolicySpec("multi_temp", _P + "multi_temperature:MultiTemperature",
               _P + "multi_temperature:MultiTempParams", aliases=("multi_temperature",)),
    PolicySpec("rpc", _P + "rpc:RPC", _P + "rpc:RPCParams"),
    PolicySpec("scale", _P + "scale:Scale", _P + "scale:ScaleParams"),
    # DeepPrune's samples use the request's max_new_tokens; its sample count is `width`.
    PolicySpec("deepprune", "parareason.pruning.deepprune:DeepPrunePolicy",
               "parareason.pruning.deepprune:DeepPruneParams", width_param="width",
               ignored=("max_new_tokens",)),
)}
ALIASES: dict[str, str] = {a: s.name for s in POLICIES.values() for a in s.aliases}
POLICY_NAMES: tuple[str, ...] = tuple(POLICIES)


def all_policy_names() -> list[str]:
    """Canonical names and aliases, sorted (what a user may type)."""
    return sorted({*POLICY_NAMES, *ALIASES})


def canonical_name(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    return key


def policy_spec(name: str) -> PolicySpec:
    return POLICIES[canonical_name(name)]


def policy_params(name: str) -> list[str]:
    """The parameter names `make_policy(name, ...)` accepts (with the common `n`)."""
    spec = policy_spec(name)
    names = [f.name for f in dataclasses.fields(spec.params_class())]
    return names if "n" in names else ["n", *names]
