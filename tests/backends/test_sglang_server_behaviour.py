"""The client against the stand-in's SGLang modes (issue 18): each test fails on a client
that assumes the lenient stand-in instead of SGLang 0.5.23's behaviour."""
from __future__ import annotations

import logging

import pytest

from parareason.backends.base import BackendError, GenerationRequest, SamplingParams
from parareason.backends.sglang import load_sglang_backend
from parareason.testing.sglang_standin import SGLangStandin, StandinModes
from tests.support.sglang_doubles import ByteTestTokenizer, ScriptTestBackend, collect, run_to_end, wait_until

TOK = ByteTestTokenizer()
PROMPT = tuple(TOK.encode("Question: 2+2?\n"))  # 15 tokens
QUICK = dict(stall_timeout_s=5, request_timeout_s=20, backoff_base_s=0.02, backoff_max_s=0.1, abort_drain_s=1.0)


def req(seq_id: str, ids=PROMPT, **params) -> GenerationRequest:
    return GenerationRequest(seq_id, tuple(ids), SamplingParams(**params), affinity_key="k")


def test_logprob_scaling_is_detected_and_recorded(caplog):
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes.real_defaults()) as srv:
        with caplog.at_level(logging.WARNING), load_sglang_backend(srv.url, TOK, **QUICK) as b:
            assert b.facts["logprobs"] == "temperature-scaled"
            assert b.facts["seeded_reruns_repeat"] is False
        assert "SGLANG_RETURN_ORIGINAL_LOGPROB" in caplog.text and "--enable-deterministic-inference" in caplog.text
    with SGLangStandin(ScriptTestBackend()) as srv, load_sglang_backend(srv.url, TOK, **QUICK) as b:
        assert b.facts["logprobs"] == "original" and b.facts["seeded_reruns_repeat"] is True


def test_context_length_caps_max_new_tokens_and_a_full_context_is_an_error():
    # The scheduler allows max_req_len - n - 1 = ctx - n - 2 new tokens and refuses n >= ctx - 6.
    ctx = len(PROMPT) + 10
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(context_length=ctx)) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK) as b:
        assert b.facts["context_length"] == ctx and b.facts["max_req_input_len"] == ctx - 6
        b.submit(req("capped", max_new_tokens=500))
        b.submit(req("longest", ids=TOK.encode("x" * (ctx - 7)), max_new_tokens=500))
        b.submit(req("full", ids=TOK.encode("x" * (ctx - 6)), max_new_tokens=1))
        seen = {k: collect(v) for k, v in run_to_end(b).items()}
    assert seen["capped"]["reason"] == "length" and len(seen["capped"]["tokens"]) == 8, seen["capped"]["error"]
    assert seen["longest"]["reason"] == "length" and len(seen["longest"]["tokens"]) == 5, seen["longest"]["error"]
    sent = {r["rid"].split(".")[0]: r["sampling_params"]["max_new_tokens"] for r in srv.generate_requests
            if "rid" in r}
    assert sent == {"capped": 8, "longest": 5}  # "full" never sent
    assert seen["full"]["reason"] == "error" and "context full" in seen["full"]["error"]


def test_the_servers_max_req_input_len_is_the_limit_when_the_kv_pool_is_smaller():
    # tp_worker.py: max_req_len = min(context - 1, KV pool - 1) = 39, max_req_input_len = 34.
    modes = StandinModes(context_length=100, kv_pool_tokens=40)
    with SGLangStandin(ScriptTestBackend(), modes=modes) as srv, load_sglang_backend(srv.url, TOK, **QUICK) as b:
        assert b.facts["context_length"] == 100 and b.facts["max_req_input_len"] == 34
        b.submit(req("capped", max_new_tokens=500))
        b.submit(req("full", ids=TOK.encode("x" * 34), max_new_tokens=1))
        seen = {k: collect(v) for k, v in run_to_end(b).items()}
    assert seen["capped"]["reason"] == "length" and len(seen["capped"]["tokens"]) == 39 - len(PROMPT) - 1
    assert seen["full"]["reason"] == "error" and "context full" in seen["full"]["error"]


def test_a_scheduler_refusal_is_an_error_without_the_stub_token():
    # Told a larger context than the server has, the client sends an input the scheduler aborts.
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(context_length=30)) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK, context_length=100) as b:
        b.submit(req("refused", ids=TOK.encode("x" * 25), max_new_tokens=3))  # 25 + 3 <= 30: past the tokenizer
        c = collect(run_to_end(b)["refused"])
    assert c["reason"] == "error" and "Input length (25 tokens) exceeds the maximum allowed length (24" in c["error"]
    assert c["tokens"] == []  # the one token the server streams is the stub input's, not ours
    assert len([r for r in srv.generate_requests if r.get("rid", "").startswith("refused.")]) == 1  # not retried


def test_server_side_context_refusal_streams_as_an_error_chunk():
    # The client was told a larger context than the server enforces: the refusal is HTTP 200 + error chunk.
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(context_length=20)) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK, context_length=100) as b:
        b.submit(req("over", max_new_tokens=50))
        c = collect(run_to_end(b)["over"])
    assert c["reason"] == "error" and "maximum context length of 20" in c["error"] and "not retried" not in c["error"]
    assert len([r for r in srv.generate_requests if r.get("rid", "").startswith("over.")]) == 1  # not retried


def test_abort_before_the_first_chunk_closes_the_stream_instead_of_a_lost_abort_request():
    modes = StandinModes(dispatch_window_s=0.4)
    with SGLangStandin(ScriptTestBackend(), modes=modes, step_interval_s=0.01) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK) as b:
        b.submit(req("early", max_new_tokens=400))
        wait_until(lambda: srv.live, what="request registered on the server")
        [live] = srv.live.values()
        b.abort("early")
        assert [u.finish_reason for u in run_to_end(b)["early"]] == ["abort"]
        wait_until(lambda: srv.disconnected_rids, what="stream closed")
        # The hang-up's abort (create_abort_task, 2 s later) lands, past the dispatch window.
        wait_until(lambda: live.aborted and not srv.backend.has_work(), what="stopped by the disconnect abort")
        assert srv.abort_requests == []  # no /abort_request that the window would have swallowed


def test_abort_after_the_first_chunk_uses_abort_request_with_the_admin_key():
    modes = StandinModes(admin_api_key="adm")
    with SGLangStandin(ScriptTestBackend(), modes=modes, step_interval_s=0.01) as srv, \
            load_sglang_backend(srv.url, TOK, admin_api_key="adm", **QUICK) as b:
        b.submit(req("late", max_new_tokens=4000))
        got = 0
        while got < 3:
            got += sum(len(u.token_ids) for u in b.step(0.2))
        b.abort("late")
        run_to_end(b)
        wait_until(lambda: srv.aborted_rids, what="server-side abort")
        assert srv.aborted_rids[0].startswith("late.") and srv.disconnected_rids == []
        wait_until(lambda: not srv.backend.has_work(), what="generation stopped")


def test_abort_without_the_admin_key_is_reported(caplog):
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(admin_api_key="adm"), step_interval_s=0.01) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK) as b, caplog.at_level(logging.WARNING):
        b.submit(req("nokey", max_new_tokens=4000))
        while not any(u.token_ids for u in b.step(0.2)):
            pass
        b.abort("nokey")
        run_to_end(b)
        wait_until(lambda: "HTTP 401" in caplog.text, what="warning")
        assert "admin_api_key" in caplog.text
        wait_until(lambda: not srv.backend.has_work(), what="stopped by the closed stream")


def test_ignore_eos_with_stop_token_ids_never_sends_both_and_still_stops():
    with SGLangStandin(ScriptTestBackend(eos_after=3)) as srv, load_sglang_backend(srv.url, TOK, **QUICK) as b:
        b.submit(req("both", max_new_tokens=200, ignore_eos=True, stop_token_ids=(ord("4"),)))
        c = collect(run_to_end(b)["both"])
        sp = srv.generate_requests[-1]["sampling_params"]
    assert sp["ignore_eos"] is True and "stop_token_ids" not in sp
    assert c["reason"] == "stop_token" and c["matched"] == ord("4") and c["tokens"][-1] == ord("4")
    assert ord("4") not in c["tokens"][:-1]  # stopped at the first one, nothing after it delivered


def test_nan_finish_is_an_error_not_a_stop_string():
    with SGLangStandin(ScriptTestBackend(), step_interval_s=0.01) as srv, load_sglang_backend(srv.url, TOK, **QUICK) as b:
        srv.faults.nan_after_tokens = 3
        b.submit(req("nan", max_new_tokens=50, stop_strings=("zzz",)))
        c = collect(run_to_end(b)["nan"])
    assert c["reason"] == "error" and "NaN" in c["error"]


def test_model_info_is_read_from_the_current_endpoint():
    with SGLangStandin(ScriptTestBackend()) as srv, load_sglang_backend(srv.url, TOK, **QUICK):
        assert "/model_info" in srv.paths and "/get_model_info" not in srv.paths  # deprecated name


def test_router_with_no_healthy_worker_is_a_clear_start_up_error():
    modes = StandinModes(router=True, healthy_workers=False, router_workers=("http://127.0.0.1:31000",))
    with SGLangStandin(ScriptTestBackend(), modes=modes) as srv:
        with pytest.raises(BackendError, match="sglang-router with no healthy worker"):
            load_sglang_backend(srv.url, TOK, **QUICK)


def test_router_workers_become_the_abort_targets():
    with SGLangStandin(ScriptTestBackend(), step_interval_s=0.01) as worker:
        modes = StandinModes(router=True, router_workers=(worker.url,))
        with SGLangStandin(ScriptTestBackend(), modes=modes) as router, \
                load_sglang_backend(router.url, TOK, **QUICK) as b:
            assert b.server_facts.router_workers == [worker.url]
            b.submit(req("via-router", max_new_tokens=4000))
            while not any(u.token_ids for u in b.step(0.2)):
                pass
            b.abort("via-router")
            run_to_end(b)
            wait_until(lambda: worker.abort_requests, what="abort sent to the worker")
            assert worker.abort_requests[0]["rid"].startswith("via-router.")


def test_an_older_router_without_get_workers_is_read_from_list_workers():
    with SGLangStandin(ScriptTestBackend()) as worker:
        modes = StandinModes(router=True, router_legacy=True, router_workers=(worker.url,))
        with SGLangStandin(ScriptTestBackend(), modes=modes) as router, \
                load_sglang_backend(router.url, TOK, **QUICK) as b:
            assert b.server_facts.router_workers == [worker.url]
            assert "/workers" in router.paths and "/list_workers" in router.paths


def test_dp_size_sends_a_stable_routed_dp_rank_per_affinity_key():
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(dp_size=4)) as srv, \
            load_sglang_backend(srv.url, TOK, **QUICK) as b:
        for i in range(3):
            b.submit(GenerationRequest(f"a{i}", PROMPT, SamplingParams(max_new_tokens=2), affinity_key="same"))
        for i in range(8):
            b.submit(GenerationRequest(f"b{i}", PROMPT, SamplingParams(max_new_tokens=2), affinity_key=f"key{i}"))
        run_to_end(b)
    ranks = {body["rid"].split(".")[0]: body["routed_dp_rank"] for body in srv.generate_requests if "rid" in body}
    assert len({ranks[f"a{i}"] for i in range(3)}) == 1  # one request's threads on one rank
    assert all(0 <= r < 4 for r in ranks.values()) and len(set(ranks.values())) > 1
