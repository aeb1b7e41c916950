"""`VLLMBackend` against a fake vLLM server on loopback (real HTTP, no vLLM): retries,
faults, affinity and start-up errors, each with an exact expected answer.

The fake (tests/support/vllm_fake.py) streams vLLM 0.32's completion chunks; the live
tests (test_vllm_live.py) run the same client against the real server.
"""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

import pytest

from parareason.backends.base import BackendError, GenerationRequest, SamplingParams
from parareason.backends.vllm import load_vllm_backend
from parareason.server.background import free_port, serve_in_background
from tests.support.sglang_doubles import collect, run_to_end, wait_until
from tests.support.vllm_fake import BLOCK, TOK, FakeVLLM, Fault, build_app

PROMPT = tuple(TOK.encode("Question: what is 6 times 7? Think step by step.\n"))
FAST = dict(connect_timeout_s=1.0, first_token_timeout_s=3.0, stall_timeout_s=3.0, request_timeout_s=30.0,
            backoff_base_s=0.01, backoff_max_s=0.05, max_retries=2, dead_cooldown_s=0.2)


@contextmanager
def fake(**kw) -> Iterator[tuple[FakeVLLM, str]]:
    srv = FakeVLLM(**kw)
    with serve_in_background(build_app(srv)) as url:
        yield srv, url


def req(seq_id: str, n: int = 10, key: str | None = None, **params) -> GenerationRequest:
    return GenerationRequest(seq_id, PROMPT, SamplingParams(max_new_tokens=n, seed=5, **params), affinity_key=key)


def expected(n: int) -> list[int]:
    """What the fake writes for `req(...)`: seed 5, the prompt's length, then a sentence."""
    return TOK.encode(f"<5:{len(PROMPT)}> " + "The answer is 42. " * 5)[:n]


def test_5xx_before_the_first_token_is_retried_and_then_succeeds():
    with fake() as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        srv.faults["a"] = [Fault(status=503), Fault(status=500)]
        b.submit(req("a", n=10, top_logprobs=3))
        c = collect(run_to_end(b)["a"])
        b.submit(req("b", n=10))  # the same prompt, after "a": its whole blocks come from the cache
        d = collect(run_to_end(b)["b"])
    assert c["error"] is None and c["reason"] == "length" and c["finished"] == 1
    assert c["tokens"] == expected(10) and srv.attempts("a") == 3  # two refusals, one stream
    assert len(c["logprobs"]) == 10 and [len(t) for t in c["top"]] == [3] * 10
    assert all(t[0][0] == tok for t, tok in zip(c["top"], c["tokens"]))  # best first: the sampled one
    assert c["prompt_tokens"] == len(PROMPT)
    assert d["cached_tokens"] == BLOCK * ((len(PROMPT) - 1) // BLOCK) > 0
    assert d["prefill"] == len(PROMPT) - d["cached_tokens"]
    body = srv.requests[-1]
    assert body["prompt"] == list(PROMPT) and body["return_token_ids"] and body["stream"]


def test_a_server_that_keeps_failing_is_tried_max_retries_plus_one_times():
    with fake() as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        srv.faults["a"] = [Fault(status=503)] * 10
        b.submit(req("a"))
        c = collect(run_to_end(b)["a"])
    assert c["reason"] == "error" and "HTTP 503" in c["error"] and "3 attempt" in c["error"]
    assert srv.attempts("a") == FAST["max_retries"] + 1 and c["tokens"] == []


def test_a_refused_connection_is_retried_a_bounded_number_of_times():
    with fake() as (srv, url):
        b = load_vllm_backend([url], TOK, **FAST)
    try:  # the server is gone: every attempt is refused
        t0 = time.monotonic()
        b.submit(req("a"))
        c = collect(run_to_end(b)["a"])
    finally:
        b.close()
    assert c["reason"] == "error" and "connect" in c["error"]
    assert f"after {FAST['max_retries'] + 1} attempt(s)" in c["error"] and c["tokens"] == []
    assert time.monotonic() - t0 < 10


def test_an_error_chunk_after_tokens_is_recorded_and_not_retried():
    with fake() as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        srv.faults["e"] = [Fault(error_after=3)]
        b.submit(req("e", n=10))
        c = collect(run_to_end(b)["e"])
    assert c["reason"] == "error" and "Internal server error" in c["error"]
    assert c["tokens"] == expected(3) and srv.attempts("e") == 1  # a resend would repeat the 3 tokens


def test_a_drop_after_tokens_is_recorded_and_not_retried():
    with fake() as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        srv.faults["d"] = [Fault(drop_after=4)]
        b.submit(req("d", n=10))
        c = collect(run_to_end(b)["d"])
    assert c["reason"] == "error" and "dropped" in c["error"]
    assert c["tokens"] == expected(4) and srv.attempts("d") == 1


def test_a_drop_before_the_first_token_is_retried_without_duplicates():
    with fake() as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        srv.faults["d"] = [Fault(drop_after=0), Fault(error_after=0)]  # neither delivered a token
        b.submit(req("d", n=12))
        c = collect(run_to_end(b)["d"])
    assert c["error"] is None and c["tokens"] == expected(12)
    # the error chunk before any token is retried too: nothing was delivered
    assert srv.attempts("d") == 3


def test_other_sequences_go_on_when_one_fails():
    with fake() as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        srv.faults["bad"] = [Fault(error_after=2)]
        for sid in ("ok1", "bad", "ok2"):
            b.submit(req(sid, n=20))
        got = {k: collect(v) for k, v in run_to_end(b).items()}
    assert got["bad"]["reason"] == "error" and got["bad"]["tokens"] == expected(2)
    for sid in ("ok1", "ok2"):
        assert got[sid]["error"] is None and got[sid]["reason"] == "length" and got[sid]["tokens"] == expected(20)


def test_two_servers_keep_each_requests_threads_together():
    with ExitStack() as stack:
        servers = [stack.enter_context(fake()) for _ in range(2)]
        b = stack.enter_context(load_vllm_backend([u for _, u in servers], TOK, **FAST))
        keys = [f"q{i}" for i in range(20)]
        for k in keys:
            for j in range(3):
                b.submit(req(f"{k}.t{j}", n=4, key=k))
        got = {k: collect(v) for k, v in run_to_end(b).items()}
    assert len(got) == 60 and all(c["error"] is None and c["tokens"] == expected(4) for c in got.values())
    where = {k: {i for i, (srv, _) in enumerate(servers) for body in srv.requests
                 if srv.seq_of(body).startswith(k + ".")} for k in keys}
    assert all(len(w) == 1 for w in where.values()), where  # all threads of a request on one server
    assert {i for w in where.values() for i in w} == {0, 1}  # and the requests spread over both


def test_abort_closes_the_stream_and_the_server_stops_the_request():
    with fake(token_interval_s=0.02) as (srv, url), load_vllm_backend([url], TOK, **FAST) as b:
        b.submit(req("long", n=2000))
        wait_until(lambda: srv.running == 1, what="the stream to start")
        b.abort("long")
        [u] = b.step(0.1)
        assert u.finished and u.finish_reason == "abort"
        wait_until(lambda: srv.running == 0, limit_s=5, what="the fake to see the hang-up")
        assert b.server_metric("vllm:num_requests_running") == 0


@pytest.mark.parametrize("abort_route", [True, False])
def test_abort_reaches_a_server_that_misses_the_hang_up(abort_route):
    """vLLM 0.32 did not always abort a request whose client hung up: the client also names
    it on /inference/v1/abort_requests where the server enables it (--enable-scale-out)."""
    with fake(token_interval_s=0.02, notices_hangup=False, abort_route=abort_route) as (srv, url), \
                load_vllm_backend([url], TOK, **FAST) as b:
        assert b.facts["abort"] == ["by request id" if abort_route else "by hang-up only (no --enable-scale-out)"]
        b.submit(req("long", n=2000))
        b.submit(req("other", n=2000))
        wait_until(lambda: srv.running == 2, what="the streams to start")
        b.abort("long")
        [u] = b.step(0.1)
        assert u.finished and u.finish_reason == "abort"
        if abort_route:
            wait_until(lambda: srv.running == 1, limit_s=5, what="the abort route to end the request")
            [rid] = srv.aborted
            [long] = [r for r in srv.requests if srv.seq_of(r) == "long"]
            assert rid == f"cmpl-{long['request_id']}-0"  # vLLM's external id of the completion
        else:
            time.sleep(0.3)
            assert srv.running == 2 and srv.aborted == []  # runs on, as vLLM's did; the route is not tried
        b.abort("other")
        assert b.step(0.1)[0].finish_reason == "abort"
        assert b.has_work() is False


def test_a_keyed_server_streams_and_aborts_by_id_with_the_key_and_refuses_without_it():
    with fake(token_interval_s=0.02, notices_hangup=False, api_key="sk-test") as (srv, url):
        with load_vllm_backend([url], TOK, api_key="sk-test", **FAST) as b:
            assert b.facts["abort"] == ["by request id"]  # the probe passed the guard
            b.submit(req("a", n=5))
            assert collect(run_to_end(b)["a"])["tokens"] == expected(5)
            b.submit(req("long", n=2000))
            wait_until(lambda: srv.running == 1, what="the stream to start")
            b.abort("long")
            assert b.step(0.1)[0].finish_reason == "abort"
            wait_until(lambda: srv.running == 0, limit_s=5, what="the keyed abort route to end the request")
            assert len(srv.aborted) == 1
        with pytest.raises(BackendError, match="401 .*started with --api-key; pass the same key"):
            load_vllm_backend([url], TOK, **FAST)


def test_an_unhealthy_server_at_start_up_is_a_clear_error():
    with fake(health_status=503) as (_, url):
        with pytest.raises(BackendError, match=r"not usable: /health answered 503"):
            load_vllm_backend([url], TOK, **FAST)
    with pytest.raises(BackendError, match=r"not usable: cannot connect"):
        load_vllm_backend([f"http://127.0.0.1:{free_port()}"], TOK, **FAST)
