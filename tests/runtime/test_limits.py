"""Every limit ends the offending thread with status `limit` and reason `limit:<name>`."""
import pytest

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from tests.support.runtime_policies import LaunchN

BOMB = "<spawn>\na\nb\nc\n</spawn>"  # a model that spawns at every turn


def run(script, *, n=1, protocol="plain", tokens_per_step=1, max_new_tokens=10_000, **limits):
    be = ScriptedBackend(script, tokens_per_step=tokens_per_step)
    sched = Scheduler(be)
    live_peak = [0]
    spec = RequestSpec(id="r", prompt="q", policy=LaunchN(n), protocol=protocol,
                       params=SamplingParams(seed=0, max_new_tokens=max_new_tokens), limits=Limits(**limits))
    sched.add(spec)
    results = []
    while sched.has_work():
        results += sched.step()
        for run_state in sched._runs.values():
            live_peak[0] = max(live_peak[0], run_state.table.live)
    sched.drain()
    assert sched.trie.live_nodes() == 0
    [r] = results
    return r, live_peak[0]


def test_tokens_per_thread():
    r, _ = run(lambda c: "a" * 100, n=2, tokens_per_thread=17, tokens_per_step=5)
    assert [(t.status, t.reason, t.tokens) for t in r.threads] == [("limit", "limit:tokens_per_thread", 17)] * 2


def test_max_new_tokens_is_a_length_finish_not_a_limit():
    r, _ = run(lambda c: "a" * 100, max_new_tokens=9)
    assert (r.threads[0].status, r.threads[0].reason, r.threads[0].tokens) == ("finished", "length", 9)


@pytest.mark.parametrize("tps", [1, 7, 1000])
def test_tokens_per_request_holds_across_parallel_threads(tps):
    r, _ = run(lambda c: "a" * 100, n=6, tokens_per_request=50, tokens_per_step=tps)
    assert sum(t.tokens for t in r.threads) <= 50
    assert r.usage["generated_tokens"] <= 50
    assert any(t.reason == "limit:tokens_per_request" for t in r.threads)
    assert all(t.status == "limit" for t in r.threads)


def test_max_live_threads_refuses_extra_samples():
    r, peak = run(lambda c: "a" * 30, n=10, max_live_threads=3)
    assert len(r.threads) == 3 and peak <= 3
    assert sum(1 for e in r.trace if e["ev"] == "launch_refused" and e["reason"] == "limit:max_live_threads") == 7


def test_max_children_per_spawn():
    def script(ctx):
        if "<|user|>\nsub" in ctx.text:
            return "child done"
        return "done" if "</join>" in ctx.assistant_text else "<spawn>\nsub1\nsub2\nsub3\nsub4\nsub5\n</spawn>"
    r, _ = run(script, protocol="apr", max_children_per_spawn=2)
    kids = [t for t in r.threads if t.parent]
    assert [t.status for t in kids] == ["finished"] * 2 + ["limit"] * 3
    assert all(t.reason == "limit:max_children_per_spawn" for t in kids[2:])
    assert r.threads[0].status == "finished"
    join = [e for e in r.trace if e["ev"] == "protocol" and e["kind"] == "join"]
    assert join and join[0]["children"] == 5  # refused children are reported to the parent too


def test_spawn_bomb_terminates_within_limits():
    r, peak = run(lambda c: BOMB, n=2, protocol="apr", max_live_threads=12, max_spawn_depth=2,
                  tokens_per_request=3000, tokens_per_step=4)
    assert r.error is None
    assert peak <= 12
    assert sum(t.tokens for t in r.threads) <= 3000
    depth = {}
    by_id = {t.id: t for t in r.threads}
    for t in r.threads:
        depth[t.id] = 0 if t.parent is None else depth[t.parent] + 1
    assert max(d for tid, d in depth.items() if by_id[tid].tokens > 0) <= 2
    reasons = {t.reason for t in r.threads}
    assert "limit:max_spawn_depth" in reasons
    assert all(not t.status in ("pending", "running", "waiting") for t in r.threads)


def test_spawn_bomb_with_deadline_only_ends():
    be = ScriptedBackend(lambda c: BOMB, tokens_per_step=8, latency_s=0.002)
    sched = Scheduler(be)
    spec = RequestSpec(id="r", prompt="q", policy=LaunchN(1), protocol="apr",
                       params=SamplingParams(seed=0, max_new_tokens=10**6),
                       limits=Limits(max_live_threads=None, max_spawn_depth=None, max_children_per_spawn=None,
                                     tokens_per_thread=None, deadline_s=0.5))
    [r] = list(sched.run([spec]))
    assert any(t.reason == "limit:deadline_s" for t in r.threads)
    assert sched.trie.live_nodes() == 0


def test_limits_validate():
    with pytest.raises(ValueError):
        Limits(max_live_threads=-1)
    with pytest.raises(ValueError):
        Limits(deadline_s=0)
