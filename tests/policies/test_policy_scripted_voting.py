"""Voting policies on the real scheduler with the ScriptedBackend test double (no model):
self-consistency, first-finish search, Best-of-Majority, multi-temperature and RPC.
Helpers: tests/support/scripted_policies.py."""
from __future__ import annotations

from parareason.grading import answers_equal
from tests.support.scripted_policies import by_sample, policy_events, run, statuses


# -- self-consistency -----------------------------------------------------------------
def test_self_consistency_votes_over_equivalent_answers():
    res, _ = run("self_consistency", by_sample(["\\boxed{4}", "so \\boxed{5}", "\\boxed{4.0}", "\\boxed{\\frac{8}{2}}"]), n=4)
    assert answers_equal(res.answer, "4") and res.correct
    assert [v["count"] for v in res.details["votes"]] == [3, 1]
    assert res.details["launched"] == 4 and statuses(res) == ["finished"] * 4
    assert policy_events(res, "sc_vote")
    # parallel samples: the request took as many decode steps as its longest sample
    assert res.usage["sequential_tokens"] == len("\\boxed{\\frac{8}{2}}")


def test_self_consistency_tie_goes_to_the_more_confident_answer():
    res, _ = run("self_consistency", by_sample(["??????\\boxed{4}", "\\boxed{5}"]), n=2)
    assert res.answer == "5"


def test_a_sample_cut_by_its_token_cap_votes_only_with_a_stated_answer():
    # s0 and s1 run out of tokens mid-sum (last number 5); s2 had boxed 4 before its cap
    cut = "so 2 + 3 = 5 and " + "x" * 60
    stated = "\\boxed{4} hmm " + "y" * 60
    res, _ = run("self_consistency", by_sample([cut, cut, stated, "\\boxed{4}"]), n=4, max_new_tokens=30)
    assert [t.reason for t in res.threads] == ["length", "length", "length", "eos"]
    assert [t.answer for t in res.threads] == [None, None, "4", "4"]
    assert res.answer == "4" and res.details["answered"] == 2


# -- first-finish search ----------------------------------------------------------------
def test_ffs_returns_the_first_finisher_and_aborts_the_rest():
    long = "Let me think about this for quite a while first. " * 2 + "\\boxed{9}"
    res, _ = run("ffs", by_sample([long, long, "\\boxed{4}", long]), n=4)
    assert res.answer == "4"
    assert res.details["first_finished"] == ["s2"]
    assert sorted(res.details["aborted"]) == ["s0", "s1", "s3"]
    assert statuses(res).count("cancelled") == 3
    full = 3 * len(long) + len("\\boxed{4}")
    assert res.usage["generated_tokens"] < full
    assert res.details["tokens_saved_estimate"] == 3 * len("\\boxed{4}")  # 3 aborted x mean finished length
    assert res.details["aborted_tokens"] == res.usage["generated_tokens"] - len("\\boxed{4}")
    assert policy_events(res, "ffs_stop")


def test_ffs_k2_votes_over_the_first_two():
    res, _ = run("ffs", by_sample(["\\boxed{5}", "x\\boxed{4}", "xx\\boxed{4}", "x" * 60 + "\\boxed{5}"]),
                 n=4, k=2, tokens_per_step=1)
    assert res.details["first_finished"] == ["s0", "s1"]
    assert sorted(res.details["aborted"]) == ["s2", "s3"]


def test_ffs_stops_samples_that_had_not_started():
    # A backend that advances 2 sequences per step: s2 and s3 wait, so when s0 finishes
    # they have produced nothing and are stopped before they cost anything.
    res, _ = run("ffs", by_sample(["abc \\boxed{4}", "y" * 50 + "\\boxed{5}"]), n=4,
                 backend_kw={"max_batch": 2})
    assert res.answer == "4" and res.details["first_finished"] == ["s0"]
    assert res.details["tokens_saved_estimate"] == 3 * len("abc \\boxed{4}")
    assert res.usage["generated_tokens"] <= 2 * len("abc \\boxed{4}") + 1  # only s0 and s1 ran


# -- Best-of-Majority --------------------------------------------------------------------
def test_bom_filters_rare_answers_before_ranking():
    unsure4 = "?" * 10 + "\\boxed{4}"
    res, _ = run("bom", by_sample([unsure4, "\\boxed{5}", unsure4, "\\boxed{6}", unsure4]), n=5,
                 min_fraction=0.3)
    assert res.answer == "4"  # 5 and 6 are more confident but rare
    assert [c["answer"] for c in res.details["candidates"]] == ["4"]
    assert res.details["filtered_out"] == 2


def test_bom_returns_k_candidates_ranked_by_reward():
    replies = ["\\boxed{4}", "\\boxed{5}", "a\\boxed{4}", "bb\\boxed{5}", "\\boxed{6}"]
    reward = lambda prompt, s: -len(s.text)  # noqa: E731 - shortest trace is best
    res, _ = run("bom", by_sample(replies), n=5, k=2, min_fraction=0.4, reward=reward)
    assert [c["answer"] for c in res.details["candidates"]] == ["4", "5"]
    assert res.answer == "4"


# -- multi-temperature --------------------------------------------------------------------
def test_multi_temp_spreads_samples_and_votes_across_temperatures():
    script = lambda ctx: "\\boxed{5}" if ctx.params.temperature >= 1.0 else "\\boxed{4}"  # noqa: E731
    res, backend = run("multi_temp", script, n=6, temperatures=(0.2, 0.6, 1.0))
    temps = sorted(r.params.temperature for r in backend.submitted)
    assert temps == [0.2, 0.2, 0.6, 0.6, 1.0, 1.0]
    assert res.answer == "4"
    per = res.details["per_temperature"]
    assert per["t=1"]["winner"] == "5" and per["t=0.2"]["winner"] == "4"
    assert per["t=0.6"]["launched"] == 2


# -- RPC ---------------------------------------------------------------------------------
def test_rpc_perplexity_consistency_prefers_probable_paths():
    unsure5 = "?" * 30 + "\\boxed{5}"
    replies = [unsure5, "\\boxed{4}", "?" * 31 + "\\boxed{5}"]
    res, _ = run("rpc", by_sample(replies), n=3, prune_margin=100.0)
    assert res.answer == "4"  # two improbable paths weigh less than one probable one
    sc, _ = run("self_consistency", by_sample(replies), n=3)
    assert sc.answer == "5"


def test_rpc_prunes_low_probability_traces_early():
    sure = "step " * 12 + "\\boxed{4}"
    unsure = "?" * 100 + "\\boxed{5}"
    res, _ = run("rpc", by_sample([sure, sure, unsure, sure]), n=4, prune_after=16, prune_margin=0.5,
                 pruning="online")
    assert [p["sample"] for p in res.details["pruned"]] == ["s2"]
    s2 = next(t for t in res.threads if t.id.startswith("s2."))
    assert s2.status == "pruned" and s2.tokens < 40
    assert res.answer == "4"


def test_rpc_counts_identical_paths_once():
    res, _ = run("rpc", by_sample(["\\boxed{5}", "\\boxed{5}", "\\boxed{4}"]), n=3)
    assert res.details["distinct_paths"] == 2
