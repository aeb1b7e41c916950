"""The vLLM backend against a real vLLM CPU server (marker `live_vllm`).

    make test-live                                   # starts a server, runs these, stops it
    PARAREASON_VLLM_URL=http://127.0.0.1:8000 pytest -m live_vllm tests/backends   # your server

With neither PARAREASON_VLLM_START=1 nor PARAREASON_VLLM_URL the tests skip. The server
serves the shipped qwen2.5-0.5b-coder (float32) as parareason/testing/vllm_server.py starts
it. The kill-and-resume test needs a server it owns (PARAREASON_VLLM_START=1): it kills
it mid-run and starts it again.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from parareason.backends.base import FINISH_ERROR, FINISH_LENGTH, FINISH_STOP_STRING, GenerationRequest, SamplingParams
from parareason.backends.registry import load_backend
from tests.support.engine_util import run_all

MODEL = os.environ.get("PARAREASON_VLLM_MODEL", "qwen2.5-0.5b-coder")
OWN = os.environ.get("PARAREASON_VLLM_START") == "1"
URL = os.environ.get("PARAREASON_VLLM_URL")
QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?")
# vLLM caches whole KV blocks (128 tokens on CPU): a few-shot prompt fills at least two of them
FEW_SHOT = "\n\n".join([f"Question: {QUESTION} (example {k})\nAnswer: 72" for k in range(4)] + [QUESTION])
pytestmark = [pytest.mark.live_vllm,
              pytest.mark.skipif(not (OWN or URL), reason="no vLLM server (make test-live starts one)")]


@pytest.fixture(scope="module")
def server():
    if URL:
        yield {"url": URL, "handle": None}
        return
    from parareason.testing.vllm_server import start_server

    handle = start_server(MODEL)
    box = {"url": handle.url, "handle": handle}
    try:
        yield box
    finally:
        box["handle"].stop()


@pytest.fixture(scope="module")
def backend(server):
    b = load_backend("vllm", MODEL, [server["url"]])
    yield b
    b.close()


def _req(backend, seq_id: str, text: str, **params) -> GenerationRequest:
    ids = backend.tokenizer.chat_ids([{"role": "user", "content": text}])
    return GenerationRequest(seq_id, tuple(ids), SamplingParams(**{"temperature": 0.0, "max_new_tokens": 24,
                                                                   **params}))


def test_start_up_checks_read_the_server(backend, server):
    import httpx

    assert backend.max_model_len == 4096 and backend.model == MODEL
    assert backend.servers[0].prefix_caching is True
    assert backend.facts["max_model_len"] == 4096 and backend.facts["cache_block_size"] == 128
    # the server tokenizes the chat prompt (special tokens included) into the local ids
    ids = backend.tokenizer.chat_ids([{"role": "user", "content": QUESTION}])
    text = backend.tokenizer.decode_raw(ids)
    r = httpx.post(server["url"] + "/tokenize", json={"model": MODEL, "prompt": text, "add_special_tokens": False},
                   timeout=60)
    assert r.status_code == 200 and len(ids) > 20
    assert r.json()["tokens"] == ids


def test_greedy_tokens_logprobs_and_prefix_cache_for_siblings(backend):
    reqs = [_req(backend, f"g{i}", FEW_SHOT, top_logprobs=5) for i in range(16)]
    backend.submit(reqs[0])
    first = run_all(backend)["g0"]
    for r in reqs[1:]:
        backend.submit(r)
    got = run_all(backend)
    assert all(got[f"g{i}"].tokens == first.tokens for i in range(1, 16))  # greedy: the same tokens
    assert len(first.tokens) == len(first.logprobs) > 0
    tops = [t for u in first.updates for t in (u.top_logprobs or [])]
    assert len(tops) == len(first.tokens) and all(len(t) == 5 for t in tops)
    # greedy: the sampled token is the best alternative, with the same (raw, T=1) logprob
    assert all(t[0][0] == tok and abs(t[0][1] - lp) < 1e-4 for t, tok, lp in zip(tops, first.tokens, first.logprobs))
    block = backend.servers[0].block_size
    prompt = len(reqs[0].input_ids)
    assert block and prompt >= 2 * block
    for i in range(1, 16):  # each sibling got every whole block of the prompt from the cache
        u = got[f"g{i}"].last
        assert u.cached_tokens == block * (prompt // block) or u.cached_tokens == block * ((prompt - 1) // block)
        assert u.prefill_computed_tokens == prompt - u.cached_tokens


def test_stop_strings_and_the_context_cap(backend):
    backend.submit(_req(backend, "stop", "Count from 1 to 20, separated by commas.", stop_strings=("7",),
                        max_new_tokens=80))
    backend.submit(GenerationRequest("cap", tuple([backend.tokenizer.encode("a")[0]] * 4090),
                                     SamplingParams(temperature=0.0, max_new_tokens=50, ignore_eos=True)))
    backend.submit(GenerationRequest("full", tuple([backend.tokenizer.encode("a")[0]] * 4096),
                                     SamplingParams(max_new_tokens=5)))
    got = run_all(backend)
    stop = got["stop"].last
    assert stop.finish_reason == FINISH_STOP_STRING and stop.matched_stop == "7", stop.error
    assert "7" in backend.tokenizer.decode(got["stop"].tokens)
    cap = got["cap"]
    assert cap.last.finish_reason == FINISH_LENGTH and len(cap.tokens) == 6  # 4096 - 4090
    full = got["full"].last
    assert full.finish_reason == FINISH_ERROR and "4096" in full.error


def test_abort_closes_the_stream_and_the_server_stops_the_request(backend):
    backend.submit(_req(backend, "long", "Write a long story about the sea.", temperature=0.7, seed=1,
                        max_new_tokens=2000, ignore_eos=True))
    got: list[int] = []
    deadline = time.monotonic() + 300
    while len(got) < 3 and time.monotonic() < deadline:
        for u in backend.step(0.5):
            got += u.token_ids
    assert backend.server_metric("vllm:num_requests_running") >= 1
    backend.abort("long")
    [u] = backend.step(0.1)
    assert u.finished and u.finish_reason == "abort"
    deadline = time.monotonic() + 30
    while backend.server_metric("vllm:num_requests_running") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert backend.server_metric("vllm:num_requests_running") == 0


def test_sc_ffs_and_deepconf_end_to_end_over_vllm(server):
    import parareason

    with parareason.Engine(MODEL, backend="vllm", urls=[server["url"]]) as engine:
        rows = [{"id": "q", "prompt": FEW_SHOT, "answer": "72"}]
        [sc] = engine.run(rows, policy="sc", n=4, max_new_tokens=120, seed=3)
        # FFS needs a sample that finishes with an answer: at 120 tokens none of the few-shot
        # prompt's did (its chat answers run ~200-300 tokens), so FFS gets the bare question
        # and room to answer; the samples still running when the first finished are aborted
        [ffs] = engine.run([{"id": "q", "prompt": QUESTION, "answer": "72"}], policy="ffs", n=6,
                           max_new_tokens=400, seed=3, policy_args={"k": 1})
        # ... and vLLM stopped them at once: the client closed each stream and, as the server
        # it started has --enable-scale-out, named it on /inference/v1/abort_requests (the
        # hang-up alone left a request running to its end in 2 runs of 14); a step takes < 1 s
        assert len(ffs.details["aborted"]) >= 1, ffs.details
        if OWN:
            assert engine.backend.facts["abort"] == ["by request id"]
        deadline = time.monotonic() + 5
        while engine.backend.server_metric("vllm:num_requests_running") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.backend.server_metric("vllm:num_requests_running") == 0
        [dc] = engine.run(rows, policy="deepconf", n=4, max_new_tokens=120, seed=3,
                          policy_args={"mode": "online", "warmup": 2, "window": 16, "top_logprobs": 5})
        for r in (sc, ffs, dc):
            assert r.error is None and r.usage["generated_tokens"] > 0
        assert sc.usage["cached_tokens"] >= 3 * 128  # four samples of one prompt share its whole blocks
        assert "threshold" in dc.details
        # DeepConf's confidences were computed from 5 alternatives per token from vLLM
        assert dc.details["top_logprobs"] == {"requested": 5, "fewest_returned": 5}, dc.details["top_logprobs"]


def test_bench_engines_writes_one_table_with_ratios(server, tmp_path):
    from parareason.bench.engines_bench import EnginesBenchConfig, run_engines_bench

    out = tmp_path / "B.md"
    rows = run_engines_bench(EnginesBenchConfig(url=server["url"], model=MODEL, n=2, max_new_tokens=8, out_path=out))
    assert [r.label.split()[0] for r in rows] == ["embedded", "vLLM", "parareason", "parareason", "parareason"]
    assert all(r.tokens > 0 and r.seconds > 0 for r in rows)
    text = out.read_text()
    assert "tokens/s vs vLLM n" in text and "| vLLM n=2 (one request) |" in text and "1.00x" in text


@pytest.mark.skipif(not OWN, reason="needs a server this test may kill (PARAREASON_VLLM_START=1)")
def test_a_killed_server_fails_rows_with_a_recorded_error_and_resume_finishes(server, tmp_path):
    """Last in the module: it kills the server and starts a new one."""
    import signal
    import subprocess
    import sys
    import threading

    from parareason.testing.vllm_server import start_server

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"{QUESTION} ({i})"}) + "\n"
                               for i in range(4)))
    out = tmp_path / "out.jsonl"

    def cli(url: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "parareason.cli.main", "run", str(prompts), "--backend", "vllm",
                               "--url", url, "--model", MODEL, "-n", "2", "--max-new-tokens", "300", "--out", str(out),
                               "--resume", "-q"], capture_output=True, text=True, timeout=900)

    handle = server["handle"]
    killer = threading.Timer(20.0, lambda: os.killpg(handle.process.pid, signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    first = cli(server["url"])
    killer.cancel()
    assert time.monotonic() - t0 < 600, "the run must end, not hang"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    failed = [r for r in rows if r["error"]]
    assert failed and all("vLLM" in r["error"] or "failed" in r["error"] for r in failed), first.stdout
    server["handle"] = handle = start_server(MODEL, port=int(server["url"].rsplit(":", 1)[1]))
    second = cli(server["url"])
    assert second.returncode == 0, second.stdout + second.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    done = {r["id"]: r for r in rows if not r["error"]}
    assert set(done) == {f"q{i}" for i in range(4)}
