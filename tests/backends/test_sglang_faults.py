"""Failure handling of SGLangBackend: every fault ends in a bounded time, with a reason.

Faults are injected by the SGLang stand-in (real HTTP): HTTP 500, a connection
dropped mid-stream, a stalled stream, a refused connection, a worker that dies.
"""
from __future__ import annotations

import time

import pytest

from parareason.backends.base import BackendError, GenerationRequest, SamplingParams
from parareason.backends.sglang import load_sglang_backend
from parareason.testing.sglang_standin import SGLangStandin, StandinModes
from tests.support.sglang_doubles import (
    ByteTestTokenizer,
    ScriptTestBackend,
    collect,
    free_port,
    run_to_end,
    wait_until,
)

TOK = ByteTestTokenizer()
PROMPT = tuple(TOK.encode("Question: 1+1?\n"))
# probe_logprobs=False: the start-up probe's two requests would count in generate_requests.
FAST = dict(stall_timeout_s=0.6, first_token_timeout_s=0.6, request_timeout_s=15, backoff_base_s=0.02,
            backoff_max_s=0.1, abort_drain_s=0.5, probe_logprobs=False)


def req(seq_id: str, n: int = 12) -> GenerationRequest:
    return GenerationRequest(seq_id, PROMPT, SamplingParams(max_new_tokens=n), affinity_key="k")


@pytest.fixture
def server():
    srv = SGLangStandin(ScriptTestBackend(), step_interval_s=0.005).start()
    yield srv
    srv.stop()


def test_drop_mid_stream_fails_without_retry(server):
    server.faults.drop_after_tokens = 3
    with load_sglang_backend(server.url, TOK, **FAST) as b:
        b.submit(req("d"))
        c = collect(run_to_end(b)["d"])
    assert c["reason"] == "error" and "dropped" in c["error"] and "not retried" in c["error"]
    assert len(c["tokens"]) == 3  # what arrived before the drop was delivered, nothing invented
    assert len(server.generate_requests) == 1  # tokens had arrived: a resend would duplicate them


def test_500_before_any_token_is_retried_then_succeeds(server):
    server.faults.error_500_next = 2
    with load_sglang_backend(server.url, TOK, max_retries=3, **FAST) as b:
        b.submit(req("r"))
        c = collect(run_to_end(b)["r"])
    assert c["reason"] == "length" and len(c["tokens"]) == 12
    assert len(server.generate_requests) == 3
    rids = [body["rid"] for body in server.generate_requests]
    assert len(set(rids)) == 3 and all(r.startswith("r.") for r in rids)  # fresh rid per attempt


def test_500_forever_fails_after_bounded_retries(server):
    server.faults.error_500_next = 1000
    with load_sglang_backend(server.url, TOK, max_retries=2, **FAST) as b:
        b.submit(req("f"))
        c = collect(run_to_end(b)["f"])
    assert c["reason"] == "error" and "HTTP 500" in c["error"] and "after 3 attempt" in c["error"]
    assert len(server.generate_requests) == 3 and c["tokens"] == []


def test_stall_mid_stream_on_an_unhealthy_worker_fails_after_stall_timeout(server):
    server.faults.stall_after_tokens = 2
    with load_sglang_backend(server.url, TOK, **FAST) as b:
        t0 = time.monotonic()
        b.submit(req("s", n=50))
        wait_until(lambda: server.generate_requests, what="request sent")
        server.faults.health_status = 503  # the worker is gone, not just busy
        c = collect(run_to_end(b, limit_s=10)["s"])
        elapsed = time.monotonic() - t0
    assert c["reason"] == "error" and "stall" in c["error"] and "503" in c["error"]
    assert len(c["tokens"]) == 2 and len(server.generate_requests) == 1
    assert elapsed < 8  # bounded by stall_timeout_s (0.6 s), far below the test's own limit


def test_pause_after_tokens_on_a_healthy_worker_is_not_a_failure():
    # A retracted request gets no byte for longer than stall_timeout_s, then resumes.
    modes = StandinModes(pause_after_tokens=3, pause_s=2.0)
    with SGLangStandin(ScriptTestBackend(), modes=modes, step_interval_s=0.005) as srv, \
            load_sglang_backend(srv.url, TOK, **FAST) as b:
        b.submit(req("p", n=12))
        c = collect(run_to_end(b, limit_s=10)["p"])
    assert c["reason"] == "length" and len(c["tokens"]) == 12, c["error"]
    assert len(srv.generate_requests) == 1


def test_queue_delay_longer_than_the_stall_timeout_waits_for_the_first_token():
    # Before its first token a request may wait in the server's queue, sending nothing.
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(queue_delay_s=1.5)) as srv, \
            load_sglang_backend(srv.url, TOK, **{**FAST, "first_token_timeout_s": 10}) as b:
        b.submit(req("q"))
        c = collect(run_to_end(b, limit_s=15)["q"])
    assert c["reason"] == "length" and len(c["tokens"]) == 12, c["error"]
    assert len(srv.generate_requests) == 1  # not resent to the back of the queue


def test_stall_before_first_token_is_retried(server):
    server.faults.stall_after_tokens = 0
    server.faults.stall_next = 1
    with load_sglang_backend(server.url, TOK, **FAST) as b:
        b.submit(req("s0"))
        c = collect(run_to_end(b, limit_s=10)["s0"])
    assert c["reason"] == "length" and len(c["tokens"]) == 12
    assert len(server.generate_requests) == 2


def test_request_deadline_bounds_a_slow_stream():
    with SGLangStandin(ScriptTestBackend(), step_interval_s=0.05) as srv:
        with load_sglang_backend(srv.url, TOK, **{**FAST, "request_timeout_s": 0.5}) as b:
            b.submit(req("slow", n=10_000))
            c = collect(run_to_end(b, limit_s=10)["slow"])
    assert c["reason"] == "error" and "deadline" in c["error"] and 0 < len(c["tokens"]) < 10_000


def test_connection_refused_at_start_is_a_clear_backend_error():
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="no SGLang worker reachable"):
        load_sglang_backend(url, TOK, **FAST)
    assert time.monotonic() - t0 < 10


def test_unhealthy_server_is_refused(server):
    server.faults.health_status = 503
    with pytest.raises(BackendError, match="503"):
        load_sglang_backend(server.url, TOK, **FAST)


def test_worker_gone_after_start_fails_sequences_with_a_reason():
    srv = SGLangStandin(ScriptTestBackend()).start()
    b = load_sglang_backend(srv.url, TOK, max_retries=2, **FAST)
    try:
        srv.stop()
        b.submit(req("orphan"))
        c = collect(run_to_end(b, limit_s=10)["orphan"])
        assert c["reason"] == "error" and "connect" in c["error"] and "after 3 attempt" in c["error"]
    finally:
        b.close()


def test_server_side_abort_is_an_error_not_a_client_abort(server):
    with load_sglang_backend(server.url, TOK, **FAST) as b:
        b.submit(req("victim", n=10_000))
        while not server.generate_requests:
            b.step(0.05)
        rid = server.generate_requests[-1]["rid"]
        import httpx

        httpx.post(f"{server.url}/abort_request", json={"rid": rid}, timeout=5)  # an operator's abort
        c = collect(run_to_end(b, limit_s=10)["victim"])
    assert c["reason"] == "error" and "server aborted" in c["error"]


def test_unknown_option_is_a_type_error(server):
    with pytest.raises(TypeError, match="stall_timout_s"):
        load_sglang_backend(server.url, TOK, stall_timout_s=1)


class _CrashingTestBackend(ScriptTestBackend):
    """Test double whose step() raises after a few calls (a crashed model process)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def step(self, timeout_s: float = 0.05):
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("CUDA error: device-side assert")
        return super().step(timeout_s)


def test_crashing_server_backend_fails_the_sequence_with_its_message():
    with SGLangStandin(_CrashingTestBackend()) as srv, load_sglang_backend(srv.url, TOK, **FAST) as b:
        b.submit(req("c", n=100))
        c = collect(run_to_end(b, limit_s=10)["c"])
    assert c["reason"] == "error" and "device-side assert" in c["error"] and len(c["tokens"]) == 3
