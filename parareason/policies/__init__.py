"""Policies: which samples live, for how long, and what the answer is.

`make_policy(name, **params)` builds one from its name and parameter values (the
fields of its params dataclass); `POLICY_NAMES` lists the names (registry.py), and
build.py holds every way of building one.
"""
from __future__ import annotations

from parareason.policies.best_of_majority import BestOfMajority
from parareason.policies.build import make_policy, make_policy_instance, policy_for_row
from parareason.policies.confidence import DeepConf
from parareason.policies.ffs import FirstFinishSearch
from parareason.policies.multi_temperature import MultiTemperature
from parareason.policies.registry import ALIASES, POLICIES, POLICY_NAMES, all_policy_names, policy_params
from parareason.policies.rpc import RPC
from parareason.policies.scale import Scale
from parareason.policies.self_consistency import SelfConsistency

__all__ = ["ALIASES", "POLICIES", "POLICY_NAMES", "all_policy_names", "make_policy", "make_policy_instance",
           "policy_for_row", "policy_params", "SelfConsistency", "FirstFinishSearch", "DeepConf",
           "BestOfMajority", "MultiTemperature", "RPC", "Scale"]
