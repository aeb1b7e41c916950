"""One real-model smoke test per policy: SmolLM2-135M (the small shipped model), one
GSM8K question (tests/fixtures), few tokens. Checks that each policy drives the real
engine end to end: no error, the budget holds, the decision details are filled in.
Accuracy is not asserted (the 135M model is weak at math)."""
from __future__ import annotations

import json

import pytest

from parareason.policies import POLICY_NAMES, make_policy
from parareason.backends.base import SamplingParams
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from tests.support.paths import FIXTURES

ROW = json.loads((FIXTURES / "gsm8k_train_rows.jsonl").read_text().splitlines()[0])
BUDGET = 200

SETTINGS = {
    "self_consistency": {"n": 2}, "ffs": {"n": 2}, "bom": {"n": 2}, "rpc": {"n": 2, "prune_after": 8},
    "multi_temp": {"n": 2, "temperatures": (0.5, 1.0)},
    "deepconf": {"n": 3, "warmup": 1, "window": 8, "top_logprobs": 3},
    "deepconf_low": {"n": 3, "warmup": 1, "window": 8, "top_logprobs": 3},
    "deepconf_high": {"n": 3, "warmup": 1, "window": 8, "top_logprobs": 3},
    "scale": {"n": 2, "max_subproblems": 2, "outline_versions": 2, "decompose_tokens": 16, "score_tokens": 4},
    "deepprune": {"n": 2, "judge": "answer", "check_every": 8},
}
EXPECTED_DETAIL = {"self_consistency": "votes", "ffs": "tokens_saved_estimate", "bom": "candidates",
                   "rpc": "distinct_paths", "multi_temp": "per_temperature", "deepconf": "threshold",
                   "deepconf_low": "threshold", "deepconf_high": "threshold",
                   "scale": "subproblems", "deepprune": "clusters"}


@pytest.fixture(scope="module")
def results(engine):
    """All policies as concurrent requests of one scheduler on the session's shared engine
    (smollm2-135m): their samples share its batched decode steps, so the whole module
    costs about one policy's run."""
    specs = [RequestSpec(id=name, prompt=ROW["question"], policy=make_policy(name, **SETTINGS[name]),
                         params=SamplingParams(temperature=0.7, max_new_tokens=16, seed=0),
                         limits=Limits(tokens_per_request=BUDGET), reference=ROW["answer"])
             for name in POLICY_NAMES]
    yield {r.id: r for r in Scheduler(engine).run(specs, max_concurrent=len(specs))}


def test_every_policy_has_a_smoke_setting():
    assert set(SETTINGS) == set(POLICY_NAMES)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_policy_runs_on_the_real_model(results, name):
    res = results[name]
    assert res.error is None
    assert 0 < res.usage["generated_tokens"] <= BUDGET
    assert EXPECTED_DETAIL[name] in res.details
    assert res.correct in (True, False)
    if name == "deepconf":
        assert any(e.get("kind") == "deepconf_calibrated" for e in res.trace)
