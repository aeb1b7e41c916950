"""Scale-out: several SGLang workers (two stand-ins) with prefix-affinity routing."""
from __future__ import annotations

from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.sglang import load_sglang_backend
from parareason.backends.http.routing import WorkerPool
from parareason.testing.sglang_standin import SGLangStandin
from tests.support.sglang_doubles import ByteTestTokenizer, ScriptTestBackend, collect, free_port, run_to_end

TOK = ByteTestTokenizer()
# A generous stall timeout: on a loaded CI machine a slow stream must not fail a worker
# over (dead workers are found by refused connections, not by stalls).
# probe_logprobs=False: the start-up probe's two requests would count in generate_requests.
FAST = dict(stall_timeout_s=15, request_timeout_s=15, backoff_base_s=0.02, backoff_max_s=0.1, dead_cooldown_s=60,
            probe_logprobs=False)


def _threads(key: str, k: int = 3) -> list[GenerationRequest]:
    prefix = TOK.encode(f"Problem {key}: compute the sum. ")
    return [GenerationRequest(f"{key}/t{i}", tuple(prefix + TOK.encode(f"#{i}")),
                              SamplingParams(max_new_tokens=6, seed=i), affinity_key=key) for i in range(k)]


def _rids(srv: SGLangStandin) -> set[str]:
    return {b["rid"].rsplit(".", 1)[0] for b in srv.generate_requests}


def test_affinity_keeps_each_requests_threads_on_one_worker():
    with SGLangStandin(ScriptTestBackend()) as a, SGLangStandin(ScriptTestBackend()) as b:
        with load_sglang_backend([a.url, b.url], TOK, **FAST) as client:
            # 24 keys: the hash includes the stand-ins' random ports, and 8 keys all went to one
            # worker about 1 run in 128 (a CI failure); 24 make that 1 in 8 million
            keys = [f"req{i}" for i in range(24)]
            for key in keys:
                for r in _threads(key):
                    client.submit(r)
            seen = run_to_end(client)
        assert all(collect(v)["reason"] == "length" for v in seen.values()) and len(seen) == 72
        on_a, on_b = _rids(a), _rids(b)
        assert on_a and on_b and not on_a & on_b  # both used, nothing sent twice
        for key in keys:
            ids = {f"{key}/t{i}" for i in range(3)}
            assert ids <= on_a or ids <= on_b, f"{key} was split across workers"
        # placement is the documented stable hash (the same in every process)
        for key in keys:
            expected = WorkerPool([a.url, b.url]).pick(key)
            assert (f"{key}/t0" in on_a) == (expected == a.url)
        # siblings after the first hit the prefix cached on their worker
        for key in keys:
            n_prefix = len(TOK.encode(f"Problem {key}: compute the sum. "))
            cached = sorted(collect(seen[f"{key}/t{i}"])["cached_tokens"] for i in range(3))
            assert cached[0] < n_prefix <= cached[1]  # the first computes it, the others reuse it


def test_dead_worker_keys_fail_over_to_a_live_one():
    dead_url = f"http://127.0.0.1:{free_port()}"
    with SGLangStandin(ScriptTestBackend()) as live:
        with load_sglang_backend([dead_url, live.url], TOK, **FAST) as client:
            keys = [f"req{i}" for i in range(24)]  # 24: some surely prefer the dead one (random ports)
            preferred_dead = [k for k in keys if WorkerPool([dead_url, live.url]).pick(k) == dead_url]
            assert preferred_dead  # the test covers keys whose first choice is down
            for key in keys:
                for r in _threads(key, 2):
                    client.submit(r)
            seen = run_to_end(client)
        assert len(seen) == 48 and all(collect(v)["reason"] == "length" for v in seen.values())
        assert _rids(live) == set(seen)


def test_worker_dying_mid_run_moves_new_sequences_of_its_keys():
    a = SGLangStandin(ScriptTestBackend()).start()
    with SGLangStandin(ScriptTestBackend()) as b:
        try:
            with load_sglang_backend([a.url, b.url], TOK, **FAST) as client:
                key = next(f"k{i}" for i in range(100) if WorkerPool([a.url, b.url]).pick(f"k{i}") == a.url)
                client.submit(_threads(key, 1)[0])
                run_to_end(client)
                assert _rids(a) == {f"{key}/t0"}
                a.stop()
                later = GenerationRequest(f"{key}/late", tuple(TOK.encode("Problem late")),
                                          SamplingParams(max_new_tokens=4), affinity_key=key)
                client.submit(later)
                c = collect(run_to_end(client)[later.seq_id])
            # no token had arrived from the dead worker, so the resend to its successor is safe
            assert c["reason"] == "length" and len(c["tokens"]) == 4
            assert later.seq_id in _rids(b)
        finally:
            a.stop()


def test_abort_fans_out_to_listed_workers():
    # Behind sglang-router /abort_request is not proxied; abort_urls names the workers.
    with SGLangStandin(ScriptTestBackend(), step_interval_s=0.02) as front, SGLangStandin(ScriptTestBackend()) as other:
        with load_sglang_backend(front.url, TOK, abort_urls=[other.url], **FAST) as client:
            client.submit(GenerationRequest("x", tuple(TOK.encode("hi")), SamplingParams(max_new_tokens=10_000)))
            while not front.generate_requests:
                client.step(0.05)
            client.step(0.2)
            client.abort("x")
            assert [u.finish_reason for u in run_to_end(client)["x"]] == ["abort"]
        assert any(r.startswith("x.") for r in front.aborted_rids)
        # the other worker got the same /abort_request (a no-op there: it never saw the rid)
        assert [a["rid"] for a in other.abort_requests] == [a["rid"] for a in front.abort_requests]
        assert other.abort_requests and other.aborted_rids == []
