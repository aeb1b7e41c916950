"""The SGLang stand-in speaks SGLang's native wire protocol (checked with raw HTTP)."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from parareason.testing.sglang_standin import SGLangStandin, StandinModes
from tests.support.sglang_doubles import ByteTestTokenizer, ScriptTestBackend, wait_until

TOK = ByteTestTokenizer()


@pytest.fixture
def srv():
    s = SGLangStandin(ScriptTestBackend(), step_interval_s=0.005).start()
    yield s
    s.stop()


def _events(resp: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in resp.text.split("\n\n") if line.startswith("data: ")]


def test_streaming_snapshots_end_with_done(srv):
    body = {"input_ids": TOK.encode("Hi"), "rid": "a-0001", "stream": True, "return_logprob": True,
            "top_logprobs_num": 2, "sampling_params": {"max_new_tokens": 5, "temperature": 0}}
    r = httpx.post(f"{srv.url}/generate", json=body, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [len(c["output_ids"]) for c in chunks] == list(range(1, 6))  # cumulative snapshots
    last = chunks[-1]["meta_info"]
    assert last["finish_reason"] == {"type": "length", "length": 5} and "e2e_latency" in last
    assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])
    assert last["id"] == "a-0001" and last["prompt_tokens"] == 2 and last["completion_tokens"] == 5
    assert [t[1] for t in last["output_token_logprobs"]] == chunks[-1]["output_ids"]
    assert len(last["output_top_logprobs"]) == 5 and all(len(p) == 2 for p in last["output_top_logprobs"])
    assert chunks[-1]["text"] == TOK.decode(chunks[-1]["output_ids"])


def test_non_streaming_json_warm_prefill_and_cached_tokens(srv):
    prompt = TOK.encode("A shared prefix for siblings. ")
    warm = httpx.post(f"{srv.url}/generate", json={"input_ids": prompt, "sampling_params": {"max_new_tokens": 0}}).json()
    assert warm["output_ids"] == [] and warm["meta_info"]["finish_reason"]["type"] == "length"
    out = httpx.post(f"{srv.url}/generate", json={"input_ids": prompt + [65], "sampling_params": {"max_new_tokens": 3}},
                     timeout=10).json()
    assert len(out["output_ids"]) == 3 and out["meta_info"]["cached_tokens"] == len(prompt)
    again = httpx.post(f"{srv.url}/generate", json={"input_ids": prompt, "sampling_params": {"max_new_tokens": 1}},
                       timeout=10).json()
    assert again["meta_info"]["cached_tokens"] == len(prompt) - 1  # SGLang recomputes >= 1 token
    assert httpx.post(f"{srv.url}/flush_cache").status_code == 200


def test_error_shapes_are_sglangs(srv):
    # A ValueError of the tokenizer manager: 400 {"error": {"message"}} (http_server.py _create_error_response)
    missing = httpx.post(f"{srv.url}/generate", json={"sampling_params": {}})
    assert missing.status_code == 400 and "input_ids" in missing.json()["error"]["message"]
    bad = httpx.post(f"{srv.url}/generate", json={"input_ids": [1], "sampling_params": {"top_p": 0}})
    assert bad.status_code == 400 and "sampling_params" in bad.json()["error"]["message"]
    # A schema violation: 400 {"error": "<text>"}, streaming or not
    typed = httpx.post(f"{srv.url}/generate", json={"input_ids": [1], "stream": True,
                                                   "sampling_params": {"max_new_tokens": "8"}})
    assert typed.status_code == 400 and "expected i64" in typed.json()["error"]
    # While streaming, a ValueError is HTTP 200 with one error chunk, then [DONE]
    streamed = httpx.post(f"{srv.url}/generate", json={"input_ids": [1], "stream": True,
                                                      "sampling_params": {"top_p": 0}})
    events = _events(streamed)
    assert streamed.status_code == 200 and events[-1] == "[DONE]" and len(events) == 2
    err = json.loads(events[0])["error"]
    assert err["code"] == 400 and err["retryable"] is False and err["type"] == "invalid_request_error"


def _stream_in_thread(srv, rid: str, results: dict, **sp) -> threading.Thread:
    def run() -> None:
        body = {"input_ids": [1, 2], "rid": rid, "stream": True,
                "sampling_params": {"max_new_tokens": 10_000, **sp}}
        with httpx.stream("POST", f"{srv.url}/generate", json=body, timeout=20) as r:
            results[rid] = [line for line in r.iter_lines() if line.startswith("data: ")]

    t = threading.Thread(target=run)
    t.start()
    return t


def _final(lines: list[str]) -> dict:
    assert lines[-1] == "data: [DONE]"
    return json.loads(lines[-2][len("data: "):])


def test_abort_needs_the_exact_rid_then_matches_its_prefix_once(srv):
    # tokenizer_manager.py forwards only a known rid, once; scheduler.py then aborts by prefix.
    results: dict[str, list] = {}
    threads = [_stream_in_thread(srv, rid, results) for rid in ("job1-a", "job1-a7", "job2-a")]
    wait_until(lambda: len(srv.live) == 3 and all(x.running for x in srv.live.values()), what="three running")
    assert httpx.post(f"{srv.url}/abort_request", json={"rid": ""}).status_code == 200  # ignored
    assert httpx.post(f"{srv.url}/abort_request", json={"rid": "job1"}).status_code == 200  # unknown: a no-op
    assert srv.aborted_rids == [] and srv.abort_requests_forwarded == []
    assert httpx.post(f"{srv.url}/abort_request", json={"rid": "job1-a"}).status_code == 200
    wait_until(lambda: "job1-a" in results and "job1-a7" in results, what="job1-a* streams to end")
    for rid in ("job1-a", "job1-a7"):
        fr = _final(results[rid])["meta_info"]["finish_reason"]
        assert fr == {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}
    assert sorted(srv.aborted_rids) == ["job1-a", "job1-a7"]
    httpx.post(f"{srv.url}/abort_request", json={"rid": "job1-a"})  # again: abort_sent, not forwarded
    assert srv.abort_requests_forwarded == ["job1-a"]
    assert httpx.post(f"{srv.url}/abort_request", json={"abort_all": True}).status_code == 200
    for t in threads:
        t.join(timeout=10)
    assert sorted(srv.aborted_rids) == ["job1-a", "job1-a7", "job2-a"]


def test_abort_in_waiting_queue_has_no_usage():
    modes = StandinModes(queue_delay_s=30)
    with SGLangStandin(ScriptTestBackend(), modes=modes) as s:
        results: dict[str, list] = {}
        t = _stream_in_thread(s, "queued-1", results)
        wait_until(lambda: "queued-1" in s.live and s.live["queued-1"].dispatched, what="queued")
        httpx.post(f"{s.url}/abort_request", json={"rid": "queued-1"})
        t.join(timeout=10)
        meta = _final(results["queued-1"])["meta_info"]
        assert meta["finish_reason"] == {"type": "abort", "message": "Abort in waiting queue"}
        assert "prompt_tokens" not in meta and "cached_tokens" not in meta and meta["completion_tokens"] == 0
        assert len(results["queued-1"]) == 2 and not s.backend.submitted  # no byte before, never ran


def test_abort_inside_the_dispatch_window_is_lost_and_the_disconnect_abort_skipped():
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(dispatch_window_s=0.5), step_interval_s=0.01) as s:
        body = {"input_ids": [1, 2], "rid": "early-1", "stream": True, "sampling_params": {"max_new_tokens": 60}}
        with httpx.stream("POST", f"{s.url}/generate", json=body, timeout=20) as r:
            wait_until(lambda: "early-1" in s.live, what="rid registered")
            httpx.post(f"{s.url}/abort_request", json={"rid": "early-1"})  # before the scheduler has it
        # the client hung up too; the request still runs to its end on the "GPU"
        wait_until(lambda: s.backend.submitted, what="dispatched anyway")
        wait_until(lambda: not s.backend.has_work(), what="ran to the end")
        assert s.aborted_rids == [] and s.disconnected_rids == ["early-1"]
        assert r.status_code == 200


def test_disconnect_aborts_two_seconds_later_as_create_abort_task_does():
    # managers/tokenizer_manager.py:2427-2438: sleep(2), then abort the rid if still held.
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(dispatch_window_s=0.3), step_interval_s=0.01) as s:
        body = {"input_ids": [1, 2], "rid": "gone-1", "stream": True, "sampling_params": {"max_new_tokens": 10_000}}
        with httpx.stream("POST", f"{s.url}/generate", json=body, timeout=20):
            wait_until(lambda: "gone-1" in s.live, what="rid registered")
            live = s.live["gone-1"]
        wait_until(lambda: s.disconnected_rids == ["gone-1"], what="disconnect seen")
        hung_up_at = time.monotonic()
        wait_until(lambda: s.backend.submitted, what="dispatched after the hang-up")
        time.sleep(max(0.0, hung_up_at + 1.0 - time.monotonic()))
        assert s.backend.has_work() and not live.aborted  # 1 s after the hang-up it still runs
        wait_until(lambda: live.aborted and not s.backend.has_work(), what="aborted after the delay")
        assert time.monotonic() - hung_up_at >= 2.0


def test_disconnect_inside_a_dispatch_window_longer_than_the_delay_still_aborts():
    modes = StandinModes(dispatch_window_s=0.3, disconnect_abort_delay_s=0.0)
    with SGLangStandin(ScriptTestBackend(), modes=modes) as s:
        body = {"input_ids": [1, 2], "rid": "gone-1", "stream": True, "sampling_params": {"max_new_tokens": 60}}
        with httpx.stream("POST", f"{s.url}/generate", json=body, timeout=20):
            wait_until(lambda: "gone-1" in s.live, what="rid registered")
        wait_until(lambda: s.disconnected_rids == ["gone-1"], what="disconnect seen")
        time.sleep(0.6)  # past the window: the forwarded disconnect abort reached the scheduler first
        assert not s.backend.submitted


def test_admin_key_gates_abort_and_router_mode_forwards_neither_abort_nor_tokenize():
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(admin_api_key="adm")) as s:
        assert httpx.post(f"{s.url}/abort_request", json={"rid": "x"}).status_code == 401
        ok = httpx.post(f"{s.url}/abort_request", json={"rid": "x"}, headers={"Authorization": "Bearer adm"})
        assert ok.status_code == 200
    modes = StandinModes(router=True, healthy_workers=False, router_workers=("http://127.0.0.1:31000",))
    with SGLangStandin(ScriptTestBackend(), modes=modes) as s:
        assert httpx.get(f"{s.url}/health").status_code == 200  # always, even with no worker
        assert httpx.get(f"{s.url}/readiness").status_code == 503
        assert httpx.post(f"{s.url}/abort_request", json={"rid": "x"}).status_code == 404
        assert httpx.post(f"{s.url}/tokenize", json={"prompt": "a"}).status_code == 404
        assert httpx.get(f"{s.url}/model_info").status_code == 503
        assert httpx.get(f"{s.url}/workers").json()["workers"][0]["is_healthy"] is False


def test_context_limit_and_seed_and_logprob_modes():
    modes = StandinModes.real_defaults(context_length=8)
    with SGLangStandin(ScriptTestBackend(), modes=modes) as s:
        over = {"input_ids": [1, 2, 3], "stream": True, "sampling_params": {"max_new_tokens": 6}}
        r = httpx.post(f"{s.url}/generate", json=over, timeout=10)
        assert r.status_code == 200 and "maximum context length of 8" in json.loads(_events(r)[0])["error"]["message"]
        full = httpx.post(f"{s.url}/generate", json={"input_ids": list(range(8)), "sampling_params": {}})
        assert full.status_code == 400 and "longer than the model's context length" in full.json()["error"]["message"]
        info = httpx.get(f"{s.url}/server_info").json()
        assert info["context_length"] == 8 and info["enable_deterministic_inference"] is False
        seeded = {"input_ids": [1], "return_logprob": True, "top_logprobs_num": 3,
                  "sampling_params": {"max_new_tokens": 7, "sampling_seed": 7, "temperature": 0.5}}
        a, b = (httpx.post(f"{s.url}/generate", json=seeded, timeout=10).json() for _ in range(2))
        assert a["text"] != b["text"]  # the seed is ignored: ScriptTestBackend writes its seed
        lp = a["meta_info"]["output_token_logprobs"][0][0]
        assert lp != -0.01  # log_softmax(logits / 0.5), not the backend's T=1 value
        greedy = httpx.post(f"{s.url}/generate", json={**seeded, "sampling_params": {"max_new_tokens": 1,
                                                                                      "temperature": 0}}).json()
        assert greedy["meta_info"]["output_token_logprobs"][0][0] == -0.01  # greedy: unscaled


def test_scheduler_refuses_an_input_of_max_req_input_len_and_caps_max_new_tokens():
    # context 30: max_req_len 29, max_req_input_len 24 (managers/tp_worker.py:568-572).
    with SGLangStandin(ScriptTestBackend(), modes=StandinModes(context_length=30)) as s:
        assert httpx.get(f"{s.url}/server_info").json()["max_req_input_len"] == 24
        body = {"input_ids": [7] * 25, "stream": True, "return_logprob": True, "top_logprobs_num": 2,
                "sampling_params": {"max_new_tokens": 3}}  # 25 + 3 fit the tokenizer manager's check
        r = httpx.post(f"{s.url}/generate", json=body, timeout=10)
        events = _events(r)
        assert r.status_code == 200 and events[-1] == "[DONE]" and len(events) == 2
        chunk = json.loads(events[0])
        meta = chunk["meta_info"]
        assert meta["finish_reason"] == {
            "type": "abort", "status_code": 400, "err_type": "BadRequestError",
            "message": "Input length (25 tokens) exceeds the maximum allowed length (24 tokens). "
                       "Use a shorter input or enable --allow-auto-truncate."}
        assert len(chunk["output_ids"]) == 1 and meta["prompt_tokens"] == 1  # the stub input, prefilled
        assert meta["output_token_logprobs"] == [] and meta["output_top_logprobs"] == []
        plain = httpx.post(f"{s.url}/generate", json={**body, "stream": False}, timeout=10)
        assert plain.status_code == 400 and "exceeds the maximum allowed length" in plain.json()["error"]["message"]
        quiet = {"input_ids": [7] * 10, "sampling_params": {"max_new_tokens": 20}}  # 30: fits the context
        out = httpx.post(f"{s.url}/generate", json=quiet, timeout=10).json()
        assert out["meta_info"]["finish_reason"] == {"type": "length", "length": 18}  # 29 - 10 - 1


def test_duplicate_rid_in_flight_is_rejected(srv):
    def run() -> None:
        body = {"input_ids": [1], "rid": "dup-1", "stream": True, "sampling_params": {"max_new_tokens": 10_000}}
        with httpx.stream("POST", f"{srv.url}/generate", json=body, timeout=20) as r:
            for _ in r.iter_lines():
                pass

    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: "dup-1" in srv.live, what="first request live")
    r = httpx.post(f"{srv.url}/generate", json={"input_ids": [1], "rid": "dup-1", "sampling_params": {}})
    assert r.status_code == 400 and "Duplicate" in r.json()["error"]["message"]
    httpx.post(f"{srv.url}/abort_request", json={"abort_all": True})
    t.join(timeout=10)
