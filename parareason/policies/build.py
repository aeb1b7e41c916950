"""Build a policy: from a name and parameter values, or as a copy of an instance.

The one place that maps the common sample count `n` onto each policy's own parameter
(DeepPrune's `width`) and filters a run's parameters for a row's own policy.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from parareason.policies.registry import canonical_name, policy_params, policy_spec
from parareason.policies.validation import check_params
from parareason.runtime.policy import Policy


def make_policy(name: str, **params: Any) -> Policy:
    """Build policy `name`; unknown names or parameters raise ValueError/TypeError, a value
    of the wrong type or out of range ValueError (see validation.py)."""
    spec = policy_spec(name)
    params = {**dict(spec.preset), **{k: v for k, v in params.items() if k not in spec.ignored}}
    if spec.width_param != "n" and "n" in params:
        params.setdefault(spec.width_param, params.pop("n"))  # an explicit width wins
    allowed = set(policy_params(spec.name))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TypeError(f"policy {spec.name!r} has no parameter(s) {unknown}; it takes {sorted(allowed)}")
    params = check_params(spec.name, params)  # types and ranges: ValueError naming the parameter
    return spec.policy_class()(spec.params_class()(**params))


def make_policy_instance(policy: str | Policy, args: Mapping[str, Any], n: int | None) -> Policy:
    """A fresh policy for one request: a deep copy of an instance (per-request state, the
    caller's instance untouched), or one built by name with the common `n` filled in."""
    if isinstance(policy, Policy):
        return copy.deepcopy(policy)
    params = dict(args)
    if n is not None:
        params.setdefault("n", n)  # every registered policy takes the common sample count
    return make_policy(policy, **params)


def policy_for_row(row_policy: str | Policy | None, run_policy: str | Policy, run_args: Mapping[str, Any],
                   n: int | None) -> Policy:
    """The policy of one prompt: the run's, or the row's own. The run's parameters go to a
    row's own policy only where it takes them (so `--policy ffs --policy-arg k=2` does not
    break a row that asks for "sc")."""
    policy = run_policy if row_policy is None else row_policy
    args = dict(run_args)
    if policy is not run_policy and isinstance(policy, str):
        try:
            accepted = set(policy_params(canonical_name(policy)))
            args = {k: v for k, v in args.items() if k in accepted}
        except ValueError:
            pass  # unknown policy: make_policy reports it
    return make_policy_instance(policy, args, n)
