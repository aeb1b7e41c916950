"""The SGLang stand-in speaks SGLang's native wire protocol (checked with raw HTTP)."""
from __future__ import annotations

import json
import threading

import httpx
import pytest

from parareason.testing.sglang_standin import SGLangStandin
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


def test_validation_errors_are_400(srv):
    assert httpx.post(f"{srv.url}/generate", json={"sampling_params": {}}).status_code == 400
    bad = httpx.post(f"{srv.url}/generate", json={"input_ids": [1], "sampling_params": {"top_p": 0}})
    assert bad.status_code == 400 and bad.json()["object"] == "error"


def test_abort_matches_rid_prefix_and_ignores_empty_rid(srv):
    results: dict[str, list] = {}

    def run(rid: str) -> None:
        body = {"input_ids": [1, 2], "rid": rid, "stream": True, "sampling_params": {"max_new_tokens": 10_000}}
        with httpx.stream("POST", f"{srv.url}/generate", json=body, timeout=20) as r:
            results[rid] = [line for line in r.iter_lines() if line.startswith("data: ")]

    threads = [threading.Thread(target=run, args=(rid,)) for rid in ("job1-a", "job1-b", "job2-a")]
    for t in threads:
        t.start()
    wait_until(lambda: len(srv.live) == 3, what="three live requests")
    assert httpx.post(f"{srv.url}/abort_request", json={"rid": ""}).status_code == 200  # ignored
    assert httpx.post(f"{srv.url}/abort_request", json={"rid": "job1"}).status_code == 200
    wait_until(lambda: "job1-a" in results and "job1-b" in results, what="job1 streams to end")
    for rid in ("job1-a", "job1-b"):
        final = json.loads(results[rid][-2][len("data: "):])
        assert results[rid][-1] == "data: [DONE]" and final["meta_info"]["finish_reason"]["type"] == "abort"
    assert sorted(srv.aborted_rids) == ["job1-a", "job1-b"]
    assert httpx.post(f"{srv.url}/abort_request", json={"abort_all": True}).status_code == 200
    for t in threads:
        t.join(timeout=10)
    assert sorted(srv.aborted_rids) == ["job1-a", "job1-b", "job2-a"]


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
    assert r.status_code == 400 and "Duplicate" in r.json()["message"]
    httpx.post(f"{srv.url}/abort_request", json={"abort_all": True})
    t.join(timeout=10)
