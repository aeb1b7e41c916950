"""Every protocol end to end on the real embedded engine (smollm2-135m, a few tokens).

A 135M model uses the markup badly or not at all; what is checked is that the runtime
ends cleanly and returns a well-formed Result whatever the model writes.
"""
from __future__ import annotations

import json

import pytest

from parareason.backends.base import SamplingParams
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler
from parareason.runtime.thread import END_STATES
from tests.support.runtime_policies import LaunchN

PROTOCOLS = [("plain", {}), ("apr", {}), ("threadweaver", {}), ("parathinker", {"n_paths": 2})]


# `engine`: the session-wide small-model engine (tests/conftest.py, float32).


@pytest.fixture(scope="module")
def results(engine):
    """All four protocols run once, concurrently (they share engine steps)."""
    sched = Scheduler(engine)
    specs = [RequestSpec(id=name, prompt="What is 6 times 7? Use <spawn> if useful.", policy=LaunchN(1),
                         protocol=name, protocol_config=cfg, reference="42",
                         params=SamplingParams(temperature=0.8, seed=1, max_new_tokens=10),
                         limits=Limits(max_spawn_depth=1, tokens_per_request=160))
             for name, cfg in PROTOCOLS]
    out = {r.id: r for r in sched.run(specs, max_concurrent=4)}
    assert sched.trie.live_nodes() == 0
    assert not engine.has_work()
    return out


@pytest.mark.parametrize("name", [name for name, _ in PROTOCOLS])
def test_protocol_ends_cleanly_on_the_real_model(results, name):
    r = results[name]
    assert r.error is None, r.error
    assert r.protocol == name and r.correct in (True, False)
    assert r.threads and all(t.status in END_STATES and t.reason for t in r.threads), r.threads
    assert r.usage["generated_tokens"] == sum(t.tokens for t in r.threads) <= 160
    assert r.usage["prompt_tokens"] > 0
    assert r.usage["prompt_tokens"] == r.usage["cached_tokens"] + r.usage["prefill_computed_tokens"]
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))).threads == r.threads
    assert r.trace[0]["ev"] == "request" and r.trace[-1]["ev"] == "request_end"
    if name == "parathinker":  # 2 paths, then the summary (main thread) ran
        assert [t.id for t in r.threads] == ["s0.t0", "s0.t1", "s0.t2"]
        assert r.threads[2].tokens > 0
