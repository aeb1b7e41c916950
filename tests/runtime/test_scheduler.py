"""Scheduler behaviour on the scripted test backend (no model)."""
import io
import json

import pytest

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.policy import SampleOverrides
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from parareason.runtime.trace import JsonlTraceWriter, without_times
from tests.support.runtime_policies import LaunchN, LaunchNothing, Nested, PruneAfter, Raises, StopAtFirstAnswer


def answer_by_seed(ctx):
    # deterministic "model": the answer depends on the per-thread seed
    return f"thinking... \\boxed{{{4 if ctx.params.seed % 3 else 5}}}"


def spec(rid="r", policy=None, **kw):
    kw.setdefault("params", SamplingParams(seed=7, max_new_tokens=64))
    return RequestSpec(id=rid, prompt="What is 2+2?", policy=policy or LaunchN(3), **kw)


def run_one(backend, s):
    sched = Scheduler(backend)
    [result] = list(sched.run([s]))
    assert sched.trie.live_nodes() == 0, "trie nodes leaked after the request"
    assert not backend.has_work()
    return result


def test_plain_self_consistency_result_is_complete():
    be = ScriptedBackend(answer_by_seed, tokens_per_step=2)
    r = run_one(be, spec(policy=LaunchN(5), reference="4"))
    assert r.error is None and r.policy == "test-launch-n" and r.protocol == "plain"
    assert len(r.threads) == 5 and all(t.status == "finished" and t.reason == "eos" for t in r.threads)
    assert r.answer in {"4", "5"} and r.correct == (r.answer == "4")
    assert r.details["samples"] == 5
    assert r.usage["generated_tokens"] == sum(t.tokens for t in r.threads) == 5 * len("thinking... \\boxed{4}")
    assert r.usage["prompt_tokens"] == r.usage["cached_tokens"] + r.usage["prefill_computed_tokens"]
    assert r.usage["cached_tokens"] > 0  # siblings share the prompt prefix
    kinds = {e["ev"] for e in r.trace}
    assert {"request", "launch", "thread", "submit", "run_end", "finish", "sample_end", "request_end"} <= kinds
    assert r.latency_s > 0
    json.dumps(r.to_dict())  # JSON-serialisable


def test_backend_sees_trie_path_affinity_and_stop_strings():
    be = ScriptedBackend(lambda c: "abc STOP def", tokens_per_step=3)
    r = run_one(be, spec(policy=LaunchN(2), params=SamplingParams(seed=1, stop_strings=("STOP",))))
    assert all(t.reason == "stop:STOP" for t in r.threads)
    assert all(q.affinity_key == "r" for q in be.submitted)
    assert all("STOP" in q.params.stop_strings for q in be.submitted)
    seeds = [q.params.seed for q in be.submitted]
    assert len(set(seeds)) == 2  # per-thread seeds differ
    assert be.submitted[0].input_ids == be.submitted[1].input_ids  # same prompt, same path


def test_streaming_and_chunked_backends_give_identical_threads():
    results = []
    for tps in (1, 5, 1000):
        r = run_one(ScriptedBackend(answer_by_seed, tokens_per_step=tps), spec(policy=LaunchN(4)))
        results.append([(t.id, t.status, t.reason, t.tokens, t.answer) for t in r.threads] + [r.answer])
    assert results[0] == results[1] == results[2]


def test_same_seed_same_trace_other_seed_other_seeds():
    def trace(seed):
        return without_times(run_one(ScriptedBackend(answer_by_seed), spec(params=SamplingParams(seed=seed))).trace)
    assert trace(11) == trace(11)
    assert trace(11) != trace(12)


def test_requests_added_while_others_run_share_backend_steps():
    be = ScriptedBackend(lambda c: "x" * 30 + " \\boxed{1}")
    sched = Scheduler(be)
    sched.add(spec("a"))
    for _ in range(5):
        assert sched.step() == []
    sched.add(spec("b"))
    sched.step()
    owners = {sid.split("|")[0] for sid in be._seqs}
    assert owners == {"a", "b"}  # both requests' threads advance in the same backend step
    done = []
    while sched.has_work():
        done += sched.step()
    assert sorted(r.id for r in done) == ["a", "b"] and all(r.answer == "1" for r in done)
    assert sched.trie.live_nodes() == 0


def test_run_respects_max_concurrent():
    be = ScriptedBackend(lambda c: "y" * 10)
    sched = Scheduler(be)
    seen = 0
    it = sched.run([spec(f"r{i}", LaunchN(1)) for i in range(5)], max_concurrent=2)
    results = []
    for res in it:
        results.append(res)
        seen = max(seen, len(sched.live_requests()))
    assert len(results) == 5 and seen <= 2


def test_cancel_request_ends_every_thread():
    be = ScriptedBackend(lambda c: "z" * 100)
    sched = Scheduler(be)
    sched.add(spec(policy=LaunchN(3)))
    sched.step()
    sched.cancel("r", "user went away")
    [r] = sched.step()
    assert r.error == "cancelled: user went away"
    assert all(t.status == "cancelled" for t in r.threads)
    while be.has_work():  # aborted sequences are reported once more, then gone
        sched.step()
    assert sched.trie.live_nodes() == 0


def test_backend_error_fails_the_thread_not_the_request():
    def script(ctx):
        if ctx.params.seed % 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return "\\boxed{3}"
    r = run_one(ScriptedBackend(script), spec(policy=LaunchN(6)))
    failed = [t for t in r.threads if t.status == "failed"]
    assert failed and all("simulated" in t.reason for t in failed)
    assert r.error is None and r.answer == "3"


def test_policy_exception_ends_request_with_error():
    r = run_one(ScriptedBackend(lambda c: "abc"), spec(policy=Raises()))
    assert r.error and "policy bug" in r.error
    assert all(t.status == "cancelled" for t in r.threads)


def test_idle_policy_does_not_hang():
    r = run_one(ScriptedBackend(lambda c: "abc"), spec(policy=LaunchNothing()))
    assert r.error and "stalled" in r.error


def test_policy_prune_aborts_samples_on_backend():
    be = ScriptedBackend(lambda c: "w" * 50 + "\\boxed{2}")
    r = run_one(be, spec(policy=PruneAfter(4, after=5)))
    statuses = [t.status for t in r.threads]
    assert statuses[0] == "finished" and statuses[1:] == ["pruned"] * 3
    assert all(5 <= t.tokens < 50 for t in r.threads[1:])


def test_stop_cancels_the_rest():
    def script(ctx):
        return "\\boxed{1}" if ctx.params.seed % 4 == 0 else "v" * 200
    r = run_one(ScriptedBackend(script), spec(policy=StopAtFirstAnswer(8)))
    assert r.answer == "1"
    assert any(t.status == "cancelled" for t in r.threads)


def test_nested_scopes_route_events_to_child_policies():
    policy = Nested(k=3, n=2)
    r = run_one(ScriptedBackend(lambda c: "\\boxed{6}"), spec(policy=policy))
    assert r.answer == "6" and r.details == {"scopes": 3}
    assert len(policy.decisions) == 3
    for child in policy.children:
        assert len(child.ended) == 2 and child.token_events  # the child policy got its hooks
    assert {e["scope"] for e in r.trace if e["ev"] == "scope_done"} == {"root.0", "root.1", "root.2"}


def test_nested_scope_budget_is_enforced():
    policy = Nested(k=2, n=3, budget=40)
    r = run_one(ScriptedBackend(lambda c: "u" * 100, tokens_per_step=7), spec(policy=policy))
    assert sum(t.tokens for t in r.threads) <= 80
    assert any(t.reason == "limit:scope_budget" for t in r.threads)


def test_top_logprobs_and_logprobs_reach_the_sample():
    seen = {}

    class Peek(LaunchN):
        def on_sample_end(self, ctx, sample):
            seen["lp"] = list(sample.logprobs)
            seen["top"] = sample.top_logprobs
            seen["ids"] = list(sample.token_ids)
            seen["text"] = sample.text
    run_one(ScriptedBackend(lambda c: "hello"), spec(policy=Peek(1, overrides=SampleOverrides(top_logprobs=3))))
    assert seen["text"] == "hello" and len(seen["lp"]) == len(seen["ids"]) == 5
    assert len(seen["top"]) == 5 and len(seen["top"][0]) == 3


def test_trace_sink_and_jsonl_writer():
    buf = io.StringIO()
    writer = JsonlTraceWriter(buf)
    sched = Scheduler(ScriptedBackend(lambda c: "ok"), trace_sink=writer)
    [r] = list(sched.run([spec(keep_trace=False)]))
    assert r.trace is None and "trace" not in r.to_dict()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0]["ev"] == "request" and lines[-1]["ev"] == "request_end"


def test_duplicate_request_id_rejected():
    sched = Scheduler(ScriptedBackend(lambda c: "x" * 20))
    sched.add(spec())
    with pytest.raises(ValueError):
        sched.add(spec())


def test_unknown_protocol_is_an_error_result():
    r = run_one(ScriptedBackend(lambda c: "x"), spec(protocol="nope"))
    assert r.error and "unknown protocol" in r.error


def test_deadline_ends_the_request():
    be = ScriptedBackend(lambda c: "s" * 10_000, latency_s=0.01)
    r = run_one(be, spec(policy=LaunchN(2), limits=Limits(deadline_s=0.2, tokens_per_thread=None),
                         params=SamplingParams(seed=1, max_new_tokens=100_000)))
    assert all(t.status == "limit" and t.reason == "limit:deadline_s" for t in r.threads)


class LosesSequences(ScriptedBackend):
    """Breaks the backend contract: drops every sequence without a final report."""

    def step(self, timeout_s=0.05):
        self._seqs.clear()
        return []


def test_sequence_lost_by_backend_fails_the_thread_instead_of_hanging():
    r = run_one(LosesSequences(lambda c: "abc"), spec(policy=LaunchN(2)))
    assert [t.reason for t in r.threads] == ["backend lost the sequence"] * 2
    assert all(t.status == "failed" for t in r.threads)


def test_cancel_while_children_run_cancels_the_tree():
    def script(ctx):
        if "<|user|>\nsub" in ctx.text:
            return "k" * 500
        return "<spawn>\nsub 1\nsub 2\n</spawn>"
    be = ScriptedBackend(script, tokens_per_step=20)
    sched = Scheduler(be)
    sched.add(spec(policy=LaunchN(1), protocol="apr"))
    for _ in range(4):
        sched.step()
    assert [t.status for t in sched._runs["r"].threads] == ["waiting", "running", "running"]
    sched.cancel("r", "stop")
    [r] = sched.step()
    assert [t.status for t in r.threads] == ["cancelled"] * 3
    sched.drain()
    assert sched.trie.live_nodes() == 0 and not be.has_work()


def test_jsonl_trace_file_round_trip(tmp_path):
    from parareason.runtime.trace import read_jsonl
    path = tmp_path / "trace.jsonl"
    with JsonlTraceWriter(path) as writer:
        sched = Scheduler(ScriptedBackend(lambda c: "\\boxed{1}"), trace_sink=writer)
        [r] = list(sched.run([spec(policy=LaunchN(2))]))
    events = read_jsonl(path)
    assert without_times(events) == without_times(r.trace)
    assert all(isinstance(e["t"], float) for e in events)
    ends = [e for e in events if e["ev"] == "finish"]
    assert [e["tokens"] for e in ends] == [len("\\boxed{1}")] * 2


def test_backend_batch_cap_changes_timing_not_results():
    def threads(**kw):
        r = run_one(ScriptedBackend(answer_by_seed, **kw), spec(policy=LaunchN(5)))
        return [(t.id, t.status, t.tokens, t.answer) for t in r.threads]
    assert threads(max_batch=2) == threads()


def test_derived_seeds_are_stable_and_distinct():
    from parareason.runtime.backend_feed import derive_seed
    assert derive_seed(None, "s0.t0", 1) is None
    seeds = {derive_seed(7, f"s{i}.t0", 1) for i in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(7, "s0.t0", 1) == derive_seed(7, "s0.t0", 1) != derive_seed(7, "s0.t0", 2)


def test_broken_trace_sink_does_not_stop_the_request(caplog):
    def sink(event):
        raise OSError("disk full")
    sched = Scheduler(ScriptedBackend(lambda c: "\\boxed{2}"), trace_sink=sink)
    [r] = list(sched.run([spec(policy=LaunchN(1))]))
    assert r.error is None and r.answer == "2" and r.trace[-1]["ev"] == "request_end"
    assert "trace sink failed" in caplog.text
