"""Property-based tests of the runtime on random scripted models and random spawn trees.

The scripted "model" picks its behaviour (plain text, an answer, a spawn, a parallel
block, unclosed markup, a backend error, a long ramble) from a hash of its context, so
every run is deterministic and hypothesis explores many different thread trees.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from parareason.runtime.status import Status
from parareason.runtime.thread import END_STATES, LIVE_STATES
from parareason.runtime.trace import without_times
from tests.support.hashed_scripts import hashed_script
from tests.support.runtime_policies import LaunchN, PruneAfter

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# "branch" opens the protocol's own structure (a spawn, a parallel block, ...): drawn often,
# so that most runs grow a thread tree.
BEHAVIOURS = ["text", "answer", "branch", "branch", "branch", "unclosed", "close", "error", "long"]
MARKERS = ["<spawn>", "</spawn>", "<join>", "</join>", "<Parallel>", "<Outlines>", "</Outlines>",
           "<Thread>", "</Thread>", "<think path=1>", "</think>", "<summary>", "</summary>"]


def _branch(k, protocol):
    if protocol == "threadweaver":
        return "<Parallel><Outlines>\n" + "\n".join(f"{i + 1}: p" for i in range(k)) + "\n</Outlines>"
    return "<spawn>\n" + "\n".join(f"task {i}" for i in range(k)) + "\n</spawn>"  # apr; plain/parathinker: text


REPLIES = {
    "answer": lambda k, p: f"so \\boxed{{{k}}}",
    "branch": _branch,
    "unclosed": lambda k, p: "<spawn>\nhalf" if p != "threadweaver" else "<Parallel><Outlines>1: x",
    "close": lambda k, p: {"threadweaver": f"part {k}</Thread>", "parathinker": f"hmm {k}</think>"}.get(
        p, f"\\boxed{{{k}}}</summary>"),
}


def make_script(behaviours: list[str], sizes: list[int], protocol: str):
    return hashed_script(behaviours, sizes, protocol, REPLIES)


@st.composite
def scenarios(draw):
    return {
        "behaviours": draw(st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=6)),
        "sizes": draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)),
        "protocol": draw(st.sampled_from(["plain", "apr", "threadweaver", "parathinker"])),
        "n": draw(st.integers(1, 4)),
        "tokens_per_step": draw(st.sampled_from([1, 3, 16, 500])),
        "seed": draw(st.integers(0, 2**20)),
        "max_new_tokens": draw(st.integers(5, 150)) if draw(st.booleans()) else 150,
        "limits": Limits(
            max_live_threads=draw(st.integers(1, 16)),
            max_spawn_depth=draw(st.integers(0, 3)),  # 0: every spawn is refused
            max_children_per_spawn=draw(st.integers(1, 4)),
            tokens_per_thread=draw(st.one_of(st.none(), st.integers(1, 200))),
            tokens_per_request=draw(st.integers(1, 1500)) if draw(st.booleans()) else 1500,  # always bounded: spawn loops must end
        ),
        "prune_after": draw(st.one_of(st.none(), st.integers(1, 40))),
    }


class RecordingBackend(ScriptedBackend):
    """Checks, at every submit, that the context is the thread's fixed base + its own tokens."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sched: Scheduler | None = None
        self.base_of: dict[str, tuple[int, ...]] = {}
        self.violations: list[str] = []

    def submit(self, req):
        _, thread = self.sched._seq_owner[req.seq_id]
        own = tuple(thread.own_ids)
        ids = tuple(req.input_ids)
        base = ids[:len(ids) - len(own)]
        if ids[len(base):] != own:
            self.violations.append(f"{thread.id}: context does not end with the thread's own tokens")
        if self.base_of.setdefault(thread.id, base) != base:
            self.violations.append(f"{thread.id}: context prefix changed between runs")
        if thread.parent is not None and thread.role == "branch":
            parent_base = self.base_of.get(thread.parent.id)
            if parent_base is None or not ids[:len(parent_base)] == parent_base:
                self.violations.append(f"{thread.id}: fork does not extend the parent's context")
        super().submit(req)


def run_scenario(sc, *, prompt="Compute the thing.", cancel_at: int | None = None):
    be = RecordingBackend(make_script(sc["behaviours"], sc["sizes"], sc["protocol"]), tokens_per_step=sc["tokens_per_step"])
    sched = Scheduler(be)
    be.sched = sched
    policy = PruneAfter(sc["n"], sc["prune_after"]) if sc["prune_after"] else LaunchN(sc["n"])
    config = {"n_paths": 3} if sc["protocol"] == "parathinker" else {}
    spec = RequestSpec(id="r", prompt=prompt, policy=policy, protocol=sc["protocol"], protocol_config=config,
                       params=SamplingParams(seed=sc["seed"], max_new_tokens=sc["max_new_tokens"]),
                       limits=sc["limits"])
    sched.add(spec)
    results, peak, steps, cancel_check = [], 0, 0, None
    while sched.has_work():
        results += sched.step()
        steps += 1
        assert steps < 20_000, "request did not terminate"
        for run in sched._runs.values():
            live = sum(1 for t in run.threads if t.status in LIVE_STATES)
            assert live == run.table.live
            peak = max(peak, live)
            if cancel_at is not None and steps == cancel_at and cancel_check is None:
                cancel_check = cancel_random_thread(run)
    sched.drain()
    [result] = results
    return result, sched, be, peak, cancel_check


def cancel_random_thread(run):
    live = [t for t in run.threads if t.live]
    if not live:
        return None
    # the thread with the largest live subtree (ties: the earliest), so subtrees get tested
    target = max(live, key=lambda t: sum(d.live for d in t.descendants()))
    before = {t.id: t.status for t in run.threads}
    subtree = {target.id} | {d.id for d in target.descendants() if d.live}
    run.table.end_thread(target, Status.PRUNED, "property test")
    ended_now = {t.id for t in run.threads if t.id in before and before[t.id] in LIVE_STATES and not t.live}
    statuses = {t.id: t.status for t in run.threads}
    return subtree, ended_now, statuses, target.id


@SETTINGS
@given(scenarios())
def test_budgets_live_threads_and_clean_ends(sc):
    r, sched, be, peak, _ = run_scenario(sc)
    lim = sc["limits"]
    # 1. budgets and live-thread cap
    assert sum(t.tokens for t in r.threads) <= lim.tokens_per_request
    assert r.usage["generated_tokens"] == sum(t.tokens for t in r.threads)
    for t in r.threads:
        assert t.tokens <= sc["max_new_tokens"]
        assert lim.tokens_per_thread is None or t.tokens <= lim.tokens_per_thread
    assert peak <= lim.max_live_threads
    # 2. nothing live at the end; every child ends before its parent
    assert all(t.status in END_STATES and t.reason for t in r.threads)
    end_index = {}
    for i, e in enumerate(r.trace):
        if e["ev"] in ("finish", "prune", "cancel", "fail", "limit") and "thread" in e:
            end_index.setdefault(e["thread"], i)
    for t in r.threads:
        if t.parent is not None:
            assert end_index[t.id] < end_index[t.parent], (t.id, t.parent)
    # 3. no trie node outlives its threads
    assert sched.trie.live_nodes() == 0 and sched.trie.total_refs() == 0
    # 4. the backend always extends exactly the thread's path
    assert be.violations == []
    assert not be.has_work()


@SETTINGS
@given(scenarios())
def test_same_seed_same_script_same_trace(sc):
    a = run_scenario(sc)[0]
    b = run_scenario(sc)[0]
    assert without_times(a.trace) == without_times(b.trace)
    assert [(t.id, t.status, t.reason, t.tokens) for t in a.threads] == \
        [(t.id, t.status, t.reason, t.tokens) for t in b.threads]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(1, 12))
def test_cancelling_a_thread_cancels_exactly_its_subtree(sc, at):
    _, _, _, _, check = run_scenario(sc, cancel_at=at)
    if check is None:
        return
    subtree, ended_now, statuses, target = check
    assert ended_now == subtree
    assert statuses[target] == "pruned"
    assert all(statuses[tid] == "cancelled" for tid in subtree - {target})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(MARKERS), min_size=1, max_size=8),
       st.sampled_from(["plain", "apr", "threadweaver", "parathinker"]), st.integers(1, 3))
def test_markers_in_the_prompt_never_create_threads(markers, protocol, n):
    prompt = "Please explain " + " x ".join(markers) + " literally."
    sc = {"behaviours": ["answer"], "sizes": [1], "protocol": protocol, "n": n, "tokens_per_step": 4,
          "seed": 1, "max_new_tokens": 50, "limits": Limits(), "prune_after": None}
    r, _, be, _, _ = run_scenario(sc, prompt=prompt)
    per_sample = 4 if protocol == "parathinker" else 1  # 3 paths + summary
    assert len(r.threads) == n * per_sample
    assert all(t.parent is None for t in r.threads)
    assert prompt in be.tokenizer.decode(be.submitted[0].input_ids)


def test_cancel_subtree_on_a_known_tree():
    # every thread spawns two children: at step 3 the root has children and grandchildren
    sc = {"behaviours": ["branch"], "sizes": [2], "protocol": "apr", "n": 1, "tokens_per_step": 50, "seed": 3,
          "max_new_tokens": 150, "prune_after": None,
          "limits": Limits(max_live_threads=20, max_spawn_depth=2, tokens_per_request=1500)}
    _, _, _, _, (subtree, ended_now, statuses, target) = run_scenario(sc, cancel_at=3)
    assert target == "s0.t0" and len(subtree) == 7
    assert ended_now == subtree
    assert statuses[target] == "pruned"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(1, 3), st.integers(1, 3), st.integers(0, 120))
def test_nested_scope_budgets_hold(sc, k, n, budget):
    from tests.support.runtime_policies import Nested
    be = ScriptedBackend(make_script(sc["behaviours"], sc["sizes"], sc["protocol"]),
                         tokens_per_step=sc["tokens_per_step"])
    sched = Scheduler(be)
    spec = RequestSpec(id="r", prompt="q", policy=Nested(k, n, budget), protocol=sc["protocol"],
                       params=SamplingParams(seed=sc["seed"], max_new_tokens=sc["max_new_tokens"]),
                       limits=sc["limits"])
    [r] = list(sched.run([spec]))
    scope_of = {e["sample"]: e["scope"] for e in r.trace if e["ev"] == "launch"}
    per_scope: dict[str, int] = {}
    for t in r.threads:
        scope = scope_of[t.id.split(".")[0]]
        per_scope[scope] = per_scope.get(scope, 0) + t.tokens
    assert all(used <= budget for used in per_scope.values()), per_scope
    assert sum(per_scope.values()) <= sc["limits"].tokens_per_request
    assert sched.trie.live_nodes() == 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(scenarios(), min_size=2, max_size=3), st.integers(1, 3))
def test_concurrent_requests_do_not_interfere(scs, max_concurrent):
    """Requests sharing one scheduler, backend steps and trie give the same threads as alone."""
    def spec(i, sc):
        config = {"n_paths": 3} if sc["protocol"] == "parathinker" else {}
        return RequestSpec(id=f"r{i}", prompt="Compute the thing.", policy=LaunchN(sc["n"]),
                           protocol=sc["protocol"], protocol_config=config,
                           params=SamplingParams(seed=sc["seed"], max_new_tokens=sc["max_new_tokens"]),
                           limits=sc["limits"])

    def threads(r):
        return [(t.id, t.parent, t.status, t.reason, t.tokens, t.answer) for t in r.threads]

    # one script for all: the behaviour table of the first scenario, any protocol
    script = make_script(scs[0]["behaviours"], scs[0]["sizes"], "apr")
    alone = []
    for i, sc in enumerate(scs):
        [r] = list(Scheduler(ScriptedBackend(script, tokens_per_step=3)).run([spec(i, sc)]))
        alone.append(threads(r))
    sched = Scheduler(ScriptedBackend(script, tokens_per_step=3))
    together = {r.id: threads(r) for r in sched.run([spec(i, sc) for i, sc in enumerate(scs)],
                                                     max_concurrent=max_concurrent)}
    assert [together[f"r{i}"] for i in range(len(scs))] == alone
    assert sched.trie.live_nodes() == 0
