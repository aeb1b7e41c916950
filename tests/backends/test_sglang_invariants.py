"""Property test: under random aborts and injected faults, every sequence is reported
finished exactly once, nothing arrives after its finish, and nothing hangs."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.sglang import load_sglang_backend
from parareason.testing.sglang_standin import SGLangStandin
from tests.support.sglang_doubles import ByteTestTokenizer, ScriptTestBackend, script_text

TOK = ByteTestTokenizer()


@pytest.fixture(scope="module")
def server():
    srv = SGLangStandin(ScriptTestBackend(tokens_per_step=2), step_interval_s=0.002).start()
    yield srv
    srv.stop()


scenario = st.fixed_dictionaries({
    "lengths": st.lists(st.integers(1, 40), min_size=1, max_size=8),
    "abort_at_step": st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=8, max_size=8),
    "error_500_next": st.integers(0, 3),
    "drop_after": st.one_of(st.none(), st.integers(1, 20)),
    "drop_next": st.integers(0, 2),
})


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=scenario)
def test_exactly_one_finish_per_sequence_under_faults_and_aborts(server, sc):
    server.faults.error_500_next = sc["error_500_next"]
    server.faults.drop_after_tokens = sc["drop_after"]
    server.faults.drop_next = sc["drop_next"]
    opts = dict(stall_timeout_s=2, request_timeout_s=10, backoff_base_s=0.01, backoff_max_s=0.05,
                abort_drain_s=0.3, max_retries=3)
    with load_sglang_backend(server.url, TOK, **opts) as b:
        reqs = {}
        for i, n in enumerate(sc["lengths"]):
            r = GenerationRequest(f"p{i}", tuple(TOK.encode(f"q{i}")), SamplingParams(max_new_tokens=n), "k")
            reqs[r.seq_id] = r
            b.submit(r)
        tokens = {k: [] for k in reqs}
        finishes = {k: [] for k in reqs}
        step = 0
        deadline = time.monotonic() + 30
        while b.has_work():
            assert time.monotonic() < deadline, "backend did not drain"
            for i, at in enumerate(sc["abort_at_step"][: len(reqs)]):
                if at == step:
                    b.abort(f"p{i}")
            for u in b.step(0.02):
                assert not finishes[u.seq_id], f"update after finish for {u.seq_id}"
                tokens[u.seq_id] += u.token_ids
                assert len(u.logprobs) == len(u.token_ids)
                if u.finished:
                    finishes[u.seq_id].append(u)
            step += 1
        assert b.step(0.01) == []
    server.faults.error_500_next = 0
    server.faults.drop_after_tokens = None
    for sid, r in reqs.items():
        assert len(finishes[sid]) == 1, sid
        f = finishes[sid][0]
        expected = TOK.encode(script_text(r))[: r.params.max_new_tokens]
        # whatever arrived is a prefix of the true output: no duplicates, gaps or replays
        assert tokens[sid] == expected[: len(tokens[sid])], sid
        if f.finish_reason == "length":
            assert tokens[sid] == expected
        else:
            assert f.finish_reason in ("abort", "error"), f
            assert (f.error is not None) == (f.finish_reason == "error")
