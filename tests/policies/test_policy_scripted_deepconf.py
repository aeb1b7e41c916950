"""DeepConf on the real scheduler with the ScriptedBackend test double (no model): online
pruning, waves until consensus, offline filtering. Confidence is written into the text
(tests/support/scripted_policies.py: '?' tokens are unsure)."""
from __future__ import annotations

from tests.support.scripted_policies import by_sample, max_live, policy_events, run, statuses


# -- DeepConf ---------------------------------------------------------------------------
def test_deepconf_online_prunes_a_trace_whose_window_confidence_drops():
    sure = "step " * 4 + "\\boxed{4}"
    unsure = "step " + "?" * 80 + "\\boxed{5}"
    res, _ = run("deepconf", by_sample([sure, sure, unsure, sure, sure]), n=5, warmup=2, window=8,
                 keep_percent=90, consensus=1.0, in_flight=0)
    assert res.details["threshold"] is not None
    pruned = {p["sample"] for p in res.details["pruned"]}
    assert pruned == {"s2"}
    s2 = next(t for t in res.threads if t.id.startswith("s2."))
    assert s2.status == "pruned" and s2.tokens < len(unsure)
    assert res.answer == "4"
    assert policy_events(res, "deepconf_calibrated") and policy_events(res, "deepconf_prune")


def test_deepconf_online_stops_when_the_vote_is_decided():
    quick = "\\boxed{4}"
    slow = "w" * 120 + "\\boxed{5}"
    res, _ = run("deepconf", by_sample([quick, quick, quick, quick, slow, slow]), n=6, warmup=2, window=4,
                 consensus=1.0, in_flight=0)
    # after the warm-up (2 votes for 4), main samples s2, s3 finish first: 4 votes vs 2 live
    assert res.details["stopped_early"] is True
    assert res.answer == "4"
    assert statuses(res).count("cancelled") == 2
    assert res.usage["generated_tokens"] < 4 * len(quick) + 2 * len(slow)


def test_deepconf_online_stops_after_the_warmup_when_it_agrees():
    res, backend = run("deepconf", by_sample(["ok \\boxed{4}"]), n=16, warmup=4, window=4)
    assert len(res.threads) == 4 and all(t.id.split(".")[0] in {"s0", "s1", "s2", "s3"} for t in res.threads)
    assert res.details["stopped_early"] is True and res.answer == "4"
    [decided] = policy_events(res, "deepconf_decided")
    assert decided["reason"].startswith("consensus") and decided["remaining"] == 12


def test_deepconf_online_buys_traces_in_flight_sized_waves_until_consensus():
    # warm-up splits 2:2; then every main trace says 4: 4+k of 6+k reaches 0.8 at k=4
    replies = ["\\boxed{4}", "\\boxed{5}", "\\boxed{4}", "\\boxed{5}"] + ["\\boxed{4}"] * 12
    res, _ = run("deepconf", by_sample(replies), n=16, warmup=4, window=4, consensus=0.8, in_flight=2)
    assert res.answer == "4" and res.details["stopped_early"] is True
    # 8 of 10 votes say 4 after six main traces (s8 and s9 end in the same step)
    assert statuses(res) == ["finished"] * 10
    assert max_live(res) == 4  # the warm-up wave
    assert max_live(res, after="deepconf_calibrated") == 2  # then in_flight at a time
    # latency adds up over the four waves of 9-token traces; tokens do not care
    assert res.usage["sequential_tokens"] == 4 * 9 and res.usage["generated_tokens"] == 10 * 9


def test_deepconf_online_exact_rule_counts_traces_not_yet_launched():
    # 3 of 4 warm-up votes agree; 12 traces are still to come, so nothing is decided
    replies = ["\\boxed{4}", "\\boxed{4}", "\\boxed{4}", "\\boxed{5}"] + ["\\boxed{5}"] * 12
    res, _ = run("deepconf", by_sample(replies), n=16, warmup=4, window=4, consensus=1.0, in_flight=2)
    # 5 leads 1+k to 3 with 12-k to come: decided at k=8, not before
    assert res.details["stopped_early"] is True and res.answer == "5"
    [decided] = policy_events(res, "deepconf_decided")
    assert decided["reason"] == "vote decided" and decided["remaining"] == 4
    assert statuses(res).count("finished") == 12


def test_deepconf_online_gives_up_when_no_answer_repeats():
    replies = [f"\\boxed{{{k}}}" for k in range(16)]  # every trace a different answer
    res, _ = run("deepconf", by_sample(replies), n=16, warmup=4, window=4, in_flight=2, give_up_after=6)
    [decided] = policy_events(res, "deepconf_decided")
    assert decided["reason"].startswith("give up: 6 traces ended")
    assert len(res.threads) == 6 and res.answer is not None
    off, _ = run("deepconf", by_sample(replies), n=16, warmup=4, window=4, in_flight=2)
    assert len(off.threads) == 16 and not policy_events(off, "deepconf_decided")


def test_deepconf_consensus_needs_two_votes():
    cut = "x" * 50  # runs out of tokens: no answer
    res, _ = run("deepconf", by_sample(["\\boxed{4}", cut, cut, cut, "\\boxed{4}"] + [cut] * 11), n=16,
                 warmup=4, window=4, in_flight=1, consensus=0.9, max_new_tokens=20)
    # 1 of 1 answered warm-up votes is no consensus; the second vote for 4 is
    [decided] = policy_events(res, "deepconf_decided")
    assert decided["reason"].startswith("consensus") and len(res.threads) == 5


def test_deepconf_offline_keeps_only_the_confident_traces():
    sure = "ok \\boxed{4}"
    unsure = "?" * 20 + " \\boxed{5}"
    res, _ = run("deepconf", by_sample([unsure, sure, unsure, sure, unsure]), n=5, mode="offline",
                 window=4, keep_percent=40)
    assert sorted(res.details["kept"]) == ["s1", "s3"]
    assert res.answer == "4"  # plain majority would say 5 (3 votes to 2)
    sc, _ = run("self_consistency", by_sample([unsure, sure, unsure, sure, unsure]), n=5)
    assert sc.answer == "5"


def test_deepconf_requests_top_logprobs_from_the_backend():
    _, backend = run("deepconf", by_sample(["\\boxed{4}"]), n=2, warmup=1, top_logprobs=3)
    assert all(r.params.top_logprobs == 3 for r in backend.submitted)
