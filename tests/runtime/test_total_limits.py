"""Total limits that hold by default (issue 17 item 1: the spawn bomb).

The live-thread cap bounds threads alive at one moment only: a parent that spawns again
after every join multiplied the tree (4,781 threads at 256 tokens, no end at 1024).
The default `Limits` now bound threads run per request, spawns per thread, generated
tokens per request (max_new_tokens x samples x 16 without a budget) and trace events.
"""
from __future__ import annotations

import json
import zlib
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from parareason.runtime.thread_table import KEPT_REFUSED
from tests.support.runtime_policies import LaunchN

BOMB = "<spawn>\n" + "\n".join(f"task {i}" for i in range(10)) + "\n</spawn>"


def run(script, *, protocol="apr", n=1, max_new_tokens=256, limits=None, tokens_per_step=64, max_steps=5000):
    """One request to its end (asserts it ends within `max_steps` steps); the Result."""
    sched = Scheduler(ScriptedBackend(script, tokens_per_step=tokens_per_step))
    config = {"n_paths": 3} if protocol == "parathinker" else {}
    sched.add(RequestSpec(id="r", prompt="q", policy=LaunchN(n), protocol=protocol, protocol_config=config,
                          params=SamplingParams(seed=1, max_new_tokens=max_new_tokens),
                          limits=limits or Limits.for_request(max_new_tokens=max_new_tokens)))
    results, steps = [], 0
    while sched.has_work():
        results += sched.step()
        steps += 1
        assert steps < max_steps, "the request did not end"
    assert sched.trie.live_nodes() == 0
    [r] = results
    return r


def ran(r):
    """Threads that got a backend run (refused ones are reported with 0 tokens and never run)."""
    return {e["thread"] for e in r.trace if e["ev"] == "submit"}


def test_the_spawn_bomb_ends_within_the_default_limits():
    r = run(lambda c: BOMB, max_new_tokens=1024)
    lim = Limits()
    assert r.error is None
    assert len(ran(r)) <= lim.max_threads
    assert r.usage["generated_tokens"] <= 1024 * 1 * lim.request_tokens_per_sample
    reasons = Counter(t.reason for t in r.threads)
    assert reasons["limit:request_tokens_per_sample"] > 0  # the derived request cap ended it
    waits = Counter(e["thread"] for e in r.trace if e["ev"] == "wait")
    assert max(waits.values()) <= lim.max_spawns_per_thread + 1


def refused_ids(r):
    """Threads a limit refused at creation: their creation event is followed at once by
    their `limit` end (a thread admitted and cut later ends after other events)."""
    ev = r.trace
    return {b["thread"] for a, b in zip(ev, ev[1:])
            if a["ev"] in ("thread", "spawn", "fork") and b["ev"] == "limit" and b["thread"] == a["thread"]}


def row_bytes(r):
    """Size of the result's JSON row without its (separately bounded) trace."""
    d = r.to_dict()
    d.pop("trace", None)
    return len(json.dumps(d))


def bounded_records(r, n, lim):
    """Thread records stay within the limits: those run, the kept refused ones, and
    refused roots (a sample's first thread, parathinker's 3 paths and summary); the row
    with them stays small. Every refused thread not listed is counted by reason."""
    assert len(r.threads) <= lim.max_threads + KEPT_REFUSED + 4 * n
    assert row_bytes(r) <= 200 * len(r.threads) + 4096
    assert all(k.startswith("limit:") and v > 0 for k, v in r.omitted_threads.items())


def test_refused_threads_are_counted_not_listed_beyond_a_few():
    # 8 samples of a bomb: before, one row listed 2,508 threads (183 ran) at 256 tokens
    # and ~60,000 (1.2 MB without its trace; 7.7 MB at 4096 tokens)
    r = run(lambda c: BOMB, n=8, max_new_tokens=256, max_steps=100_000)
    lim = Limits.for_request(max_new_tokens=256)
    bounded_records(r, 8, lim)
    refused = refused_ids(r)
    refused_listed = [t for t in r.threads if t.id in refused]
    assert len(refused_listed) <= KEPT_REFUSED + 8
    assert sum(r.omitted_threads.values()) > 1000  # counted, not lost
    assert set(r.omitted_threads) <= {"limit:max_children_per_spawn", "limit:max_live_threads",
                                      "limit:max_spawns_per_thread", "limit:max_threads",
                                      "limit:request_tokens_per_sample"}
    assert len({t.id for t in r.threads}) == len(r.threads)  # ids stay unique
    assert len(refused_listed) + sum(r.omitted_threads.values()) == len(refused)
    assert r.to_dict()["omitted_threads"] == r.omitted_threads


def test_a_thread_that_spawns_too_often_ends_at_the_limit():
    # one child per spawn, answered at once: only the root's spawn count can stop it
    r = run(lambda c: "\\boxed{1}" if "<|user|>\nchild" in c.text else "<spawn>\nchild\n</spawn>",
            limits=Limits(max_spawns_per_thread=2, tokens_per_request=100_000))
    root = r.threads[0]
    assert (root.status, root.reason) == ("limit", "limit:max_spawns_per_thread")
    assert sum(1 for t in r.threads if t.parent == root.id and t.tokens) == 2
    assert [t.reason for t in r.threads if t.parent == root.id][-1] == "limit:max_spawns_per_thread"


def test_threads_per_request_are_bounded_in_total_not_only_live():
    r = run(lambda c: "\\boxed{1}" if "<|user|>\nchild" in c.text else "<spawn>\nchild\nchild\n</spawn>",
            limits=Limits(max_threads=5, max_live_threads=64, max_spawns_per_thread=None,
                          tokens_per_request=100_000))
    assert len(ran(r)) == 5
    assert (r.threads[0].status, r.threads[0].reason) == ("limit", "limit:max_threads")
    assert any(t.reason == "limit:max_threads" and t.tokens == 0 for t in r.threads[1:])


def test_without_a_budget_the_request_cap_is_max_new_tokens_times_samples():
    lim = Limits(request_tokens_per_sample=2)
    r = run(lambda c: "x" * 10 + BOMB, n=3, max_new_tokens=120, limits=lim)
    assert r.usage["generated_tokens"] == 120 * 3 * 2
    assert any(t.reason == "limit:request_tokens_per_sample" for t in r.threads)
    # a budget wins over the derived cap
    r = run(lambda c: "x" * 10 + BOMB, n=3, max_new_tokens=120,
            limits=Limits(request_tokens_per_sample=2, tokens_per_request=100))
    assert r.usage["generated_tokens"] == 100
    assert any(t.reason == "limit:tokens_per_request" for t in r.threads)


def test_the_trace_is_bounded_and_the_request_still_returns():
    r = run(lambda c: BOMB, limits=Limits(max_trace_events=40, tokens_per_request=100_000))
    assert r.error is None
    assert 40 <= len(r.trace) <= 40 + 3 * len(r.threads) + 10  # the ending's own events come after the cap
    assert any(e["ev"] == "trace_full" for e in r.trace)
    assert any(t.reason == "limit:max_trace_events" for t in r.threads)


# -- property: any scripted output, every protocol, the default limits -------------------
MARKERS = ["<spawn>", "</spawn>", "<join>", "</join>", "<Parallel>", "</Parallel>", "<Outlines>",
           "</Outlines>", "<Outline>", "</Outline>", "<Thread>", "</Thread>", "<think path=1>", "</think>",
           "<summary>", "</summary>", "\n", "task", "1:", "\\boxed{7}", "text " * 5]


@st.composite
def outputs(draw):
    """A table of replies (random mixes of every protocol's markers and text); each
    context picks one by hash, so threads of one run behave differently."""
    replies = draw(st.lists(st.lists(st.sampled_from(MARKERS), min_size=1, max_size=12).map("".join),
                            min_size=1, max_size=5))
    return replies


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs(), st.sampled_from(["plain", "apr", "threadweaver", "parathinker"]), st.integers(1, 3),
       st.sampled_from([1, 7, 64]), st.integers(8, 200))
def test_every_protocol_ends_within_the_default_limits(replies, protocol, n, tokens_per_step, max_new_tokens):
    r = run(lambda c: replies[zlib.crc32(c.text.encode()) % len(replies)], protocol=protocol, n=n,
            max_new_tokens=max_new_tokens, tokens_per_step=tokens_per_step, max_steps=20_000)
    lim = Limits.for_request(max_new_tokens=max_new_tokens)
    assert r.error is None
    assert len(ran(r)) <= lim.max_threads
    assert r.usage["generated_tokens"] == sum(t.tokens for t in r.threads)
    assert r.usage["generated_tokens"] <= max_new_tokens * n * lim.request_tokens_per_sample
    bounded_records(r, n, lim)
    waits = Counter(e["thread"] for e in r.trace if e["ev"] == "wait")
    assert not waits or max(waits.values()) <= lim.max_spawns_per_thread + 1
    assert len(r.trace) <= lim.max_trace_events + 3 * len(r.threads) + 10
    assert all(t.status in ("finished", "pruned", "cancelled", "failed", "limit") for t in r.threads)
