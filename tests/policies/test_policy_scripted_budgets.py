"""Policies composed inside each other, and every policy within the request's token budget,
on the real scheduler with the ScriptedBackend test double (no model)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parareason.policies import POLICY_NAMES
from tests.support.scripted_policies import by_sample, run


# -- composition and budgets ---------------------------------------------------------------
def test_confidence_stop_inside_self_consistency():
    res, _ = run("self_consistency", by_sample(["\\boxed{4}", "\\boxed{4}", "\\boxed{5}"]), n=6,
                 inner="deepconf", groups=2, inner_params={"warmup": 1, "window": 4})
    assert res.details["inner"] == "deepconf"
    assert len(res.details["group_answers"]) == 2
    assert res.answer is not None


# DeepPrune with the answer judge: the embedding judge is tested in tests/test_deepprune_*.
POLICY_CASES = [(name, {"judge": "answer"} if name == "deepprune" else {}) for name in POLICY_NAMES] + [
    ("scale", {"nested": "ffs"}), ("self_consistency", {"inner": "ffs", "groups": 2}),
    ("self_consistency", {"inner": "deepconf", "inner_params": {"warmup": 1, "window": 4}}),
    ("deepconf", {"mode": "offline"})]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize("name,extra", POLICY_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(POLICY_CASES)])
@given(budget=st.integers(0, 120), lengths=st.lists(st.integers(0, 40), min_size=1, max_size=5))
def test_no_policy_exceeds_the_request_budget(name, extra, budget, lengths):
    replies = ["x" * k + f"\\boxed{{{k % 3}}}" for k in lengths]
    params = {"n": 4, **extra}
    if name == "deepconf":
        params.update(warmup=2, window=4)
    if name == "scale":
        params.update(probe_tokens=16, decompose_tokens=24)
        script = lambda ctx: "1. a\n2. b" if "Decompose" in ctx.text else by_sample(replies)(ctx)  # noqa: E731
    else:
        script = by_sample(replies)
    res, _ = run(name, script, budget=budget, max_new_tokens=60, tokens_per_step=3, **params)
    assert res.usage["generated_tokens"] <= budget
    assert sum(t.tokens for t in res.threads) <= budget
