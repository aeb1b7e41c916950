"""Policy parameter values are checked (type from the params dataclass, range from
policies/validation.py) when a policy is built; protocol config values likewise."""
from __future__ import annotations

import math
import typing
from dataclasses import fields

import pytest

from parareason.policies import POLICIES, make_policy
from parareason.policies.build import policy_for_row
from parareason.policies.validation import POLICY_RANGES, RANGES, Range, check_params, param_types
from parareason.runtime.protocols import get_protocol

BAD = [
    ("ffs", {"k": "abc"}, "'k' must be an integer, got 'abc'"),
    ("ffs", {"k": -3}, "'k' must be >= 1, got -3"),
    ("ffs", {"k": True}, "'k' must be an integer, got True"),  # bool is not an int
    ("ffs", {"k": 1.5}, "'k' must be an integer"),
    ("sc", {"temperature": math.nan}, "'temperature' must be a finite number or null"),
    ("sc", {"temperature": -0.1}, "'temperature' must be >= 0"),
    ("sc", {"n": 0}, "'n' must be >= 1"),
    ("deepprune", {"n": 0}, "'width' must be >= 1"),  # the common n lands on DeepPrune's width
    ("multi_temp", {"temperatures": []}, "'temperatures' must not be empty"),
    ("multi_temp", {"temperatures": [0.5, "x"]}, "'temperatures' must be a non-empty list"),
    ("multi_temp", {"temperatures": 0.5}, "'temperatures' must be a non-empty list"),
    ("multi_temp", {"temperatures": [0.5, -1]}, "'temperatures' (every element) must be >= 0"),
    ("deepconf", {"mode": "sideways"}, "'mode' must be one of 'online', 'offline'"),
    ("deepconf", {"keep_percent": 0}, "'keep_percent' must be > 0 and <= 100"),
    ("deepconf", {"consensus": 1.5}, "'consensus' must be > 0 and <= 1"),
    ("deepconf", {"top_logprobs": 50}, "'top_logprobs' must be >= 0 and <= 20"),
    ("bom", {"min_fraction": 2}, "'min_fraction' must be >= 0 and <= 1"),
    ("bom", {"reward": 3}, "'reward' must be a callable or null"),
    ("rpc", {"prune_margin": -1}, "'prune_margin' must be >= 0"),
    ("scale", {"easy_threshold": 1.2}, "'easy_threshold' must be >= 0 and <= 1"),
    ("scale", {"nested": "nope"}, "'nested': unknown policy 'nope'"),
    ("scale", {"nested_params": {"k": 2}}, "policy 'self_consistency' has no parameter(s) ['k']"),
    ("sc", {"inner": "ffs", "inner_params": {"k": 0}}, "'inner_params': policy 'ffs': parameter 'k' must be >= 1"),
    ("sc", {"inner_params": "x"}, "'inner_params' must be an object"),
    ("deepprune", {"replace_lost_reps": 1}, "'replace_lost_reps' must be true or false"),
    ("deepprune", {"judge": "llm"}, "'judge' must be one of"),
    ("deepprune", {"threshold": -0.5}, "'threshold' must be >= 0 and <= 1"),
]


@pytest.mark.parametrize("name,params,fragment", BAD, ids=[f"{b[0]}-{next(iter(b[1]))}" for b in BAD])
def test_bad_values_are_refused_naming_policy_and_parameter(name, params, fragment):
    with pytest.raises(ValueError) as e:
        make_policy(name, **params)
    assert fragment in str(e.value) and "policy '" in str(e.value)


def test_good_values_are_accepted_and_normalised():
    assert make_policy("ffs", temperature=1).params.temperature == 1.0  # an int where a float is declared
    assert isinstance(make_policy("ffs", temperature=1).params.temperature, float)
    assert make_policy("multi_temp", temperatures=[0.5, 1]).params.temperatures == (0.5, 1.0)
    assert make_policy("sc", max_new_tokens=None, temperature=None).params.max_new_tokens is None
    assert make_policy("deepprune", n=3, threshold=0.7).params.width == 3
    assert make_policy("bom", reward=lambda prompt, s: 1.0).params.reward is not None
    assert make_policy("sc", inner="deepprune", inner_params={"judge": "answer"}).params.inner == "deepprune"


def test_a_rows_own_policy_is_checked_too():
    with pytest.raises(ValueError, match="'k' must be >= 1"):
        policy_for_row("bom", "sc", {"k": 0}, 4)  # the run's k goes to a row's bom, and is checked there


def _numeric_or_choice(hint) -> bool:
    args = typing.get_args(hint) or (hint,)
    return any(a in (int, float) or typing.get_origin(a) in (tuple, list) for a in args) or hint is str


def test_every_numeric_parameter_of_every_policy_has_a_range():
    """The table stays complete: a new numeric parameter must get its range."""
    free_strings = {"inner", "nested", "head", "calibration"}  # policy names are checked, paths are files
    missing = [(name, f) for name in POLICIES for f, hint in param_types(name).items()
               if _numeric_or_choice(hint) and f not in free_strings and (name, f) not in POLICY_RANGES
               and f not in RANGES]
    assert not missing
    for name in POLICIES:  # and the table names no parameter that no policy has
        assert {f.name for f in fields(POLICIES[name].params_class())} == set(param_types(name))
    every = {f for name in POLICIES for f in param_types(name)}
    assert set(RANGES) <= every


def test_a_per_policy_entry_wins_over_the_shared_one(monkeypatch):
    monkeypatch.setitem(POLICY_RANGES, ("ffs", "k"), Range(lo=2))
    with pytest.raises(ValueError, match="'k' must be >= 2"):
        check_params("ffs", {"k": 1})
    check_params("bom", {"k": 1})  # other policies keep the shared range


@pytest.mark.parametrize("name,config,fragment", [
    ("apr", {"spawn_open": ""}, "'spawn_open' must not be empty"),
    ("apr", {"spawn_open": 3}, "'spawn_open' must be a string"),
    ("apr", {"result_max_chars": 0}, "'result_max_chars' must be an integer >= 1"),
    ("parathinker", {"n_paths": "abc"}, "'n_paths' must be an integer >= 1"),
    ("parathinker", {"n_paths": True}, "'n_paths' must be an integer >= 1"),
    ("threadweaver", {"instructions": 5}, "'instructions' must be a string"),
])
def test_bad_protocol_config_values_are_refused(name, config, fragment):
    with pytest.raises(ValueError) as e:
        get_protocol(name, **config)
    assert fragment in str(e.value) and f"protocol {name}" in str(e.value)


def test_good_protocol_config_values_are_accepted():
    assert get_protocol("parathinker", n_paths=2).config["n_paths"] == 2
    assert get_protocol("apr", spawn_open="<fork>", instructions="").config["spawn_open"] == "<fork>"
