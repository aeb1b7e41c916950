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

TRAINED = {"dialect": "trained"}
APR_PREFIX = "Moving to Node #0\nCurrent State: 24:[4, 9, 3, 2], Operations: []"
# (request id, protocol, config): both dialects of each protocol
PROTOCOLS = [("plain", "plain", {}), ("apr", "apr", {}), ("threadweaver", "threadweaver", {}),
             ("parathinker", "parathinker", {"n_paths": 2}), ("apr-trained", "apr", TRAINED),
             ("threadweaver-trained", "threadweaver", TRAINED),
             ("parathinker-trained", "parathinker", {**TRAINED, "n_paths": 2, "finish_ratio": 1.0})]


# `engine`: the session-wide small-model engine (tests/conftest.py, float32).


@pytest.fixture(scope="module")
def results(engine):
    """Every protocol and dialect runs once, concurrently (they share engine steps)."""
    sched = Scheduler(engine)
    specs = [RequestSpec(id=rid, prompt=APR_PREFIX if rid == "apr-trained" else "What is 6 times 7? Use <spawn> if useful.",
                         policy=LaunchN(1), protocol=name, protocol_config=cfg,
                         reference="countdown:24:[4, 9, 3, 2]" if rid == "apr-trained" else "42",
                         params=SamplingParams(temperature=0.8, seed=1, max_new_tokens=10),
                         limits=Limits(max_spawn_depth=1, tokens_per_request=160))
             for rid, name, cfg in PROTOCOLS]
    out = {r.id: r for r in sched.run(specs, max_concurrent=len(specs))}
    assert sched.trie.live_nodes() == 0
    assert not engine.has_work()
    return out


@pytest.mark.parametrize("rid,name", [(rid, name) for rid, name, _ in PROTOCOLS])
def test_protocol_ends_cleanly_on_the_real_model(results, engine, rid, name):
    r = results[rid]
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
    if rid == "parathinker-trained":
        assert r.details["approximation"] == "flattened paths"
    if rid == "apr-trained":  # no chat template: BOS + the APR prefix
        first = next(e for e in r.trace if e["ev"] == "thread")
        bos = engine.tokenizer.hf.bos_token_id
        assert first["context"] == (bos is not None) + len(engine.tokenizer.encode(APR_PREFIX))
