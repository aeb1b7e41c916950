"""The runtime's guarantees hold in the trained dialects too (hypothesis over random scripted
models that speak the papers' markup): limits and budgets are kept, every thread ends, no
spawn loop runs away, and markers in the prompt never create threads."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.backends.base import SamplingParams
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from parareason.runtime.thread import END_STATES, LIVE_STATES
from tests.runtime.test_runtime_properties import SETTINGS, RecordingBackend
from tests.support.hashed_scripts import hashed_script
from tests.support.runtime_policies import LaunchN

APR_PROMPT = "Moving to Node #0\nCurrent State: 10:[1, 2, 3, 4], Operations: []"
NODE = "\nExploring Operation: 1+2=3, Resulting Numbers: [3, 4, 3]\nGenerated Node #0,0: 10:[3, 4, 3] Operation: 1+2=3\n"
BEHAVIOURS = ["text", "answer", "branch", "branch", "branch", "results", "unclosed", "close", "foreign", "error", "long"]
MARKERS = ["<Calling Sub Searches>", "<Start Sub Search 0 at level 1> Moving to Node #0", "<End Calling Sub Searches>",
           "<Sub Searches>", "<End Sub Searches>", "<Parallel>", "<Outlines>", "<Outline>1: a</Outline>",
           "</Outlines>", "<Thread>", "</Thread>", "<think1>", "</think1>", "</think3>", "<summary>", "</summary>"]
MAX_CALLS, MAX_ITERATIONS, N_PATHS = 6, 6, 3


def _branch(k, protocol):
    if protocol == "apr":
        starts = "".join(f"<Start Sub Search {i} at level 1> Moving to Node #0,0\n" for i in range(k))
        return NODE + "<Calling Sub Searches>\n" + starts + "<End Calling Sub Searches>\n"
    if protocol == "threadweaver":
        return "<Parallel>\n<Outlines>\n" + "".join(f"<Outline>{i + 1}: p</Outline>\n" for i in range(k)) + "</Outlines>"
    return None


REPLIES = {
    "answer": lambda k, p: f"so \\boxed{{{k}}} 10,10 equal: Goal Reached\nGoal Reached",
    "branch": _branch,
    "results": lambda k, p: "x <Sub Searches>\n<Goal Reached in Sub Search 0 at level 1 at Node #0,0>",
    "unclosed": lambda k, p: {"apr": NODE + "<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0",
                              "threadweaver": "<Parallel>\n<Outlines>\n<Outline>1: x"}.get(p, "<think1> half"),
    "close": lambda k, p: {"threadweaver": f"part {k}</Thread>", "parathinker": f"hmm {k}</think1>"}.get(
        p, f"\\boxed{{{k}}}</summary>"),
    "foreign": lambda k, p: f"odd {k}</think3></Thread><Outlines>",
}


def make_script(behaviours, sizes, protocol):
    return hashed_script(behaviours, sizes, protocol, REPLIES)


@st.composite
def scenarios(draw):
    protocol = draw(st.sampled_from(["apr", "threadweaver", "parathinker"]))
    return {
        "protocol": protocol,
        "behaviours": draw(st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=6)),
        "sizes": draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)),
        "n": draw(st.integers(1, 3)),
        "tokens_per_step": draw(st.sampled_from([1, 7, 500])),
        "seed": draw(st.integers(0, 2**20)),
        "max_new_tokens": draw(st.sampled_from([20, 150, 400])),
        "limits": Limits(
            max_live_threads=draw(st.integers(1, 16)),
            max_spawn_depth=draw(st.integers(0, 2)),
            max_children_per_spawn=draw(st.integers(1, 4)),
            tokens_per_thread=draw(st.one_of(st.none(), st.integers(1, 300))),
            tokens_per_request=draw(st.one_of(st.none(), st.integers(1, 3000))),  # None: protocol bounds alone
        ),
    }


def config_of(protocol):
    return {"dialect": "trained", **{"apr": {"max_calls": MAX_CALLS}, "threadweaver": {"max_iterations": MAX_ITERATIONS},
                                     "parathinker": {"n_paths": N_PATHS}}[protocol]}


def run(sc, prompt=None):
    be = RecordingBackend(make_script(sc["behaviours"], sc["sizes"], sc["protocol"]), tokens_per_step=sc["tokens_per_step"])
    sched = Scheduler(be)
    be.sched = sched
    spec = RequestSpec(id="r", prompt=prompt or (APR_PROMPT if sc["protocol"] == "apr" else "Compute it."),
                       policy=LaunchN(sc["n"]), protocol=sc["protocol"], protocol_config=config_of(sc["protocol"]),
                       params=SamplingParams(seed=sc["seed"], max_new_tokens=sc["max_new_tokens"]), limits=sc["limits"])
    sched.add(spec)
    results, peak, steps = [], 0, 0
    while sched.has_work():
        results += sched.step()
        steps += 1
        assert steps < 20_000, "request did not terminate"
        for r in sched._runs.values():
            peak = max(peak, sum(1 for t in r.threads if t.status in LIVE_STATES))
    sched.drain()
    [result] = results
    return result, sched, be, peak


@SETTINGS
@given(scenarios())
def test_trained_dialects_keep_limits_and_end_cleanly(sc):
    r, sched, be, peak = run(sc)
    lim, n = sc["limits"], sc["n"]
    if r.error is not None and r.error.startswith("every sample failed: "):  # only when each sample hit a fault
        samples = {t.id.split(".")[0] for t in r.threads}
        assert all(any(t.status == "failed" for t in r.threads if t.id.split(".")[0] == s) for s in samples)
    else:
        assert r.error is None or r.error.startswith("policy"), r.error
    assert all(t.status in END_STATES and t.reason for t in r.threads)
    assert peak <= lim.max_live_threads
    assert r.usage["generated_tokens"] == sum(t.tokens for t in r.threads)
    if lim.tokens_per_request is not None:
        assert sum(t.tokens for t in r.threads) <= lim.tokens_per_request
    for t in r.threads:
        assert lim.tokens_per_thread is None or t.tokens <= lim.tokens_per_thread
    # no runaway spawning, whatever the model writes (the protocols' own bounds)
    kids = lim.max_children_per_spawn
    bound = {"apr": n * MAX_CALLS * (1 + kids * MAX_CALLS), "threadweaver": n * (1 + MAX_ITERATIONS * kids),
             "parathinker": n * (N_PATHS + 1)}[sc["protocol"]]
    assert len(r.threads) <= bound
    depth = {t.id: 0 for t in r.threads}
    for t in r.threads:  # parents are listed before their children
        if t.parent is not None:
            depth[t.id] = depth[t.parent] + 1
            assert depth[t.id] <= max(lim.max_spawn_depth, 0) or t.status == "limit"
    assert sched.trie.live_nodes() == 0 and sched.trie.total_refs() == 0
    assert be.violations == []


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(MARKERS), min_size=1, max_size=8), st.sampled_from(["apr", "threadweaver", "parathinker"]),
       st.integers(1, 3))
def test_markers_in_the_prompt_never_create_threads(markers, protocol, n):
    sc = {"protocol": protocol, "behaviours": ["answer"], "sizes": [1], "n": n, "tokens_per_step": 4, "seed": 1,
          "max_new_tokens": 60, "limits": Limits()}
    prompt = ("Moving to Node #0\nCurrent State: 10:[1, 2, 3, 4], Operations: []\n" if protocol == "apr" else "") + \
        "Please explain " + "\n".join(markers) + "\nliterally."
    r, _, be, _ = run(sc, prompt=prompt)
    per_sample = N_PATHS + 1 if protocol == "parathinker" else 1
    assert len(r.threads) == n * per_sample
    assert all(t.status == "finished" for t in r.threads)
