"""Check a policy's parameter values (type and range) before anything loads.

`make_policy` calls `check_params` on every build, so the command line (`--policy-arg`),
a prompt row's own policy, eval / replay, the server and the Python API all refuse
`k="abc"` or `k=-3` with one message naming the policy and the parameter, instead of a
TypeError inside the first request.

* Types come from the params dataclass's annotations (`typing.get_type_hints`):
  `X | None`, `tuple[T, ...]` / `list[T]` (a JSON list is accepted for a tuple),
  `dict`, `Callable`, `bool` (never an int), `int` (never a bool), `float` (an int is
  accepted and converted; NaN and infinities are refused).
* Ranges come from the one table below, keyed by parameter name, with per-policy
  entries (`POLICY_RANGES`) where the same name means something else. A parameter that
  names another policy (`inner`, `nested`) must be a registered policy, and its
  parameter dict (`inner_params`, `nested_params`) is checked against that policy.
"""
from __future__ import annotations

import collections.abc
import math
import types
import typing
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Mapping

from parareason.policies.registry import canonical_name, policy_spec


@dataclass(frozen=True)
class Range:
    """Allowed values of a number (lo/hi, optionally open) or a string (choices)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def contains(self, v: Any) -> bool:
        if self.choices:
            return v in self.choices
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return " and ".join(x for x in (lo, hi) if x)


AT_LEAST_0 = Range(lo=0)
AT_LEAST_1 = Range(lo=1)
UNIT = Range(lo=0, hi=1)

# parameter name -> allowed values, for every policy that takes it (read off each
# policy's params dataclass; tests/policies/test_policy_validation.py checks that
# every numeric or choice parameter of every registered policy is listed).
RANGES: dict[str, Range] = {
    # common to most policies
    "n": AT_LEAST_1,  # samples launched
    "temperature": AT_LEAST_0,  # per-sample override
    "max_new_tokens": AT_LEAST_1,
    "temperatures": AT_LEAST_0,  # multi_temp: each element
    # ffs, bom: finished samples to wait for / candidates returned
    "k": AT_LEAST_1,
    # self_consistency composition
    "groups": AT_LEAST_1,
    # deepconf
    "mode": Range(choices=("online", "offline")),
    "window": AT_LEAST_1,
    "top_logprobs": Range(lo=0, hi=20),  # what the backends return at most
    "keep_percent": Range(lo=0, hi=100, lo_open=True),
    "warmup": AT_LEAST_1,  # online calibration traces (0 would silently mean 1)
    "consensus": Range(lo=0, hi=1, lo_open=True),
    "in_flight": AT_LEAST_0,  # 0 = all at once
    "give_up_after": AT_LEAST_0,  # 0 = off
    "preset": Range(choices=("paper", "cpu")),  # confidence_params.PRESETS
    "variant": Range(choices=("low", "high")),  # DeepConf-low / -high
    "measure": Range(choices=("lowest", "bottom10", "tail", "mean")),  # confidence_window.MEASURES
    # bom
    "min_fraction": UNIT,
    # rpc
    "prune_after": AT_LEAST_0,
    "prune_margin": AT_LEAST_0,
    "keep_min": AT_LEAST_0,
    "pruning": Range(choices=("weibull", "online", "both", "none")),
    # scale
    "max_subproblems": AT_LEAST_1,
    "decompose_tokens": AT_LEAST_1,
    "probe_samples": AT_LEAST_1,
    "probe_tokens": AT_LEAST_1,
    "easy_threshold": UNIT,
    "hard_max_new_tokens": AT_LEAST_1,
    "hard_budget": AT_LEAST_1,
    "difficulty": Range(choices=("llm", "probe")),
    "outline_versions": AT_LEAST_1,
    "select_retries": AT_LEAST_1,
    "score_retries": AT_LEAST_1,
    "select_tokens": AT_LEAST_1,
    "score_tokens": AT_LEAST_1,
    "easy_max_new_tokens": AT_LEAST_1,
    # deepprune
    "width": AT_LEAST_1,
    "check_every": AT_LEAST_1,
    "max_checks": AT_LEAST_0,
    "threshold": UNIT,  # judge scores are probabilities
    "reps_per_cluster": AT_LEAST_1,
    "weighting": Range(choices=("size", "size_confidence")),
    "judge": Range(choices=("auto", "embedding", "trained", "answer")),  # the kinds a policy can build alone
}

# (canonical policy, parameter) -> range, for a policy that reads a shared name
# differently; looked up before RANGES. Every shared name (n, k, temperature,
# max_new_tokens) means the same in today's policies, so none is needed yet.
POLICY_RANGES: dict[tuple[str, str], Range] = {}

# parameter naming another policy -> the parameter holding that policy's own values
NESTED: dict[str, str] = {"inner": "inner_params", "nested": "nested_params"}


def range_for(policy: str, name: str) -> Range | None:
    return POLICY_RANGES.get((policy, name), RANGES.get(name))


@lru_cache(maxsize=None)
def param_types(policy: str) -> dict[str, Any]:
    """Parameter name -> resolved annotation of the policy's params dataclass."""
    cls = policy_spec(policy).params_class()
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def check_params(policy: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated (and normalised: lists -> tuples, ints -> floats where a float is
    declared) copy of `params` for `policy`; raises ValueError naming the parameter.
    Unknown names are left to the caller (make_policy reports them with the full list)."""
    name = canonical_name(policy)
    hints = param_types(name)
    out = dict(params)
    for key, value in params.items():
        if key not in hints:
            continue
        where = f"policy {name!r}: parameter {key!r}"
        out[key] = _check_type(value, hints[key], where)
        rng = range_for(name, key)
        if rng is not None:
            _check_range(out[key], rng, where)
    for ref, sub in NESTED.items():
        if ref in hints:
            _check_nested(name, ref, out.get(ref, _default(name, ref)), sub, out.get(sub) or {})
    return out


def _default(policy: str, name: str) -> Any:
    cls = policy_spec(policy).params_class()
    return next(f.default for f in fields(cls) if f.name == name)


def _check_nested(policy: str, ref: str, nested: Any, sub: str, sub_params: Mapping[str, Any]) -> None:
    if nested is None:
        return
    try:
        inner = canonical_name(nested)
    except ValueError as e:
        raise ValueError(f"policy {policy!r}: parameter {ref!r}: {e}") from None
    where = f"policy {policy!r}: parameter {sub!r}"
    if not isinstance(sub_params, Mapping):
        return  # its own type check has already refused it
    accepted = {*param_types(inner), "n", *policy_spec(inner).ignored}
    unknown = sorted(set(sub_params) - accepted)
    if unknown:
        raise ValueError(f"{where}: policy {inner!r} has no parameter(s) {unknown}")
    try:
        check_params(inner, sub_params)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _fmt(v: Any) -> str:
    return repr(v) if not isinstance(v, float) else f"{v:g}"


def _check_type(v: Any, hint: Any, where: str) -> Any:
    ok, value = _coerce(v, hint)
    if not ok:
        raise ValueError(f"{where} must be {_describe(hint)}, got {_fmt(v)}")
    return value


def _coerce(v: Any, hint: Any) -> tuple[bool, Any]:
    """(matches, normalised value) of `v` against annotation `hint`."""
    if hint is Any:
        return True, v
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return type(None) in args, None
        for a in args:
            if a is not type(None):
                ok, value = _coerce(v, a)
                if ok:
                    return True, value
        return False, v
    if hint is bool:
        return isinstance(v, bool), v
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool), v
    if hint is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return ok, float(v) if ok else v
    if hint is str:
        return isinstance(v, str), v
    if origin in (tuple, list):
        if not isinstance(v, (list, tuple)):
            return False, v
        elem = args[0] if args else Any
        items = [_coerce(x, elem) for x in v]
        if not all(ok for ok, _ in items):
            return False, v
        return True, origin(x for _, x in items)
    if origin is dict or hint is dict:
        return isinstance(v, Mapping), v
    if origin is collections.abc.Callable:
        return callable(v), v
    if isinstance(hint, type):
        return isinstance(v, hint), v
    return True, v  # an annotation this checker does not model: leave it to the policy


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        return f"a non-empty list (each {_describe(args[0]) if args else 'any value'})"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if hint in names:
        return names[hint]
    if origin is dict or hint is dict:
        return "an object"
    if origin is collections.abc.Callable:
        return "a callable"
    return getattr(hint, "__name__", str(hint))


def _check_range(v: Any, rng: Range, where: str) -> None:
    values = v if isinstance(v, tuple) else (v,)
    for x in values:
        if x is None or isinstance(x, bool):
            continue
        if rng.choices and not isinstance(x, str):
            continue
        if not rng.choices and not isinstance(x, (int, float)):
            continue
        if not rng.contains(x):
            each = " (every element)" if isinstance(v, tuple) else ""
            raise ValueError(f"{where}{each} must be {rng.describe()}, got {_fmt(x)}")
    if isinstance(v, tuple) and not v:
        raise ValueError(f"{where} must not be empty")
