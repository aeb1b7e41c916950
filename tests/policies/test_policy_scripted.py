"""Policies on the real scheduler with the ScriptedBackend test double (no model).

Replies are scripted per sample (the sample index is read from the sequence id) or per
prompt. `MarkedConfidenceBackend` makes confidence readable from the text: every '?'
token is an unsure token (logprob -2, flat alternatives), every other token is sure
(logprob -0.05, alternatives far below), so a test can write a low-confidence trace.
"""
from __future__ import annotations

import re
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parareason.grading import answers_equal
from parareason.policies import POLICY_NAMES, make_policy
from parareason.backends.base import SamplingParams, SeqUpdate
from parareason.backends.scripted import CharTokenizer, ScriptContext, ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler

UNSURE_ID = CharTokenizer().encode("?")[0]
SURE_LP, UNSURE_LP = -0.05, -2.0


def _top(tok: int, k: int) -> list[tuple[int, float]]:
    if tok == UNSURE_ID:  # flat: alternatives almost as likely
        return [(tok, UNSURE_LP)] + [(tok + i, UNSURE_LP - 0.1 * i) for i in range(1, k)]
    return [(tok, SURE_LP)] + [(tok + i, -8.0 - i) for i in range(1, k)]


class MarkedConfidenceBackend(ScriptedBackend):
    """ScriptedBackend (test double) whose logprobs are set by the text: '?' = unsure."""

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates = super().step(timeout_s)
        for u in updates:
            u.logprobs = [UNSURE_LP if t == UNSURE_ID else SURE_LP for t in u.token_ids]
            if u.top_logprobs is not None:
                k = len(u.top_logprobs[0]) if u.top_logprobs and u.top_logprobs[0] else 1
                u.top_logprobs = [_top(t, k) for t in u.token_ids]
        return updates


def sample_index(ctx: ScriptContext) -> int:
    """'q|s3.t0|1' -> 3 (the scheduler names samples s0, s1, ... in launch order)."""
    return int(re.search(r"\|s(\d+)\.", ctx.seq_id).group(1))


def by_sample(replies: list[str]) -> Callable[[ScriptContext], str]:
    return lambda ctx: replies[sample_index(ctx) % len(replies)]


def run(policy_name: str, script: Callable[[ScriptContext], str], *, budget: int | None = None,
        max_new_tokens: int = 200, tokens_per_step: int = 1, backend_kw: dict | None = None,
        **params) -> tuple[Result, ScriptedBackend]:
    backend = MarkedConfidenceBackend(script, tokens_per_step=tokens_per_step, **(backend_kw or {}))
    spec = RequestSpec(id="q", prompt="What is 2+2?", policy=make_policy(policy_name, **params),
                       params=SamplingParams(temperature=0.7, max_new_tokens=max_new_tokens, seed=0),
                       limits=Limits(tokens_per_request=budget), reference="4")
    [result] = list(Scheduler(backend).run([spec]))
    assert result.error is None, result.error
    return result, backend


def policy_events(result: Result, kind: str) -> list[dict]:
    return [e for e in result.trace or [] if e.get("kind") == kind]


def statuses(result: Result) -> list[str]:
    return [t.status for t in result.threads]


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


def max_live(result: Result, after: str | None = None) -> int:
    """Most samples running at once (after the first event of kind `after`, if given)."""
    live = peak = 0
    counting = after is None
    for e in result.trace or []:
        counting = counting or e.get("kind") == after
        if e["ev"] == "submit":
            live += 1
        elif e["ev"] == "run_end":
            live -= 1
        if counting:
            peak = max(peak, live)
    return peak


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


# -- SCALE -------------------------------------------------------------------------------
OUTLINE = '{"step1": "Find a", "step2": "Find b", "step3": "Combine them"}'


def scale_script(outline: str = OUTLINE, choice: str = "version1",
                 scores: dict[str, str] | None = None) -> Callable[[ScriptContext], str]:
    scores = {"Find a": "0.2", "Find b": "0.8"} if scores is None else scores

    def script(ctx: ScriptContext) -> str:
        t = ctx.text
        if "Decompose the math problem" in t:
            return outline
        if "Pick the version" in t:
            return choice
        if "Rate the difficulty" in t:
            return next((v for k, v in scores.items() if f"next step to be solved: {k}" in t), "0.1")
        if "Question: Find a" in t:
            return "a is \\boxed{3}"
        if "Question: Find b" in t:
            assert "step answer:3" in t  # the earlier step's answer is propagated
            return "?" * (12 + 3 * sample_index(ctx)) + "\\boxed{7}"
        if "Question: What is 2+2?" in t:  # the last step: the question itself
            return "\\boxed{4}" if "step answer:3" in t and "step answer:7" in t else "\\boxed{0}"
        return "\\boxed{4}"
    return script


def test_scale_routes_easy_steps_to_system1_and_hard_ones_to_a_nested_vote():
    res, _ = run("scale", scale_script(), n=3, outline_versions=2)
    subs = res.details["subproblems"]
    assert [s["text"] for s in subs] == ["Find a", "Find b", "What is 2+2?"]  # question replaces the last
    assert [s["difficulty"] for s in subs] == [0.2, 0.8, 0.9]  # the model's scores; the last forced
    assert [s["mode"] for s in subs] == ["system1", "system2", "system2"]
    assert [s["answer"] for s in subs] == ["3", "7", "4"]
    assert res.answer == "4" and res.details["answer_source"] == "last_step"
    assert res.details["selection"] == "llm" and res.details["selected"] == 0
    assert not res.details["decomposition_fallback"]
    scopes = [e["tag"] for e in res.trace if e.get("ev") == "scope_open"]
    assert scopes == ["sub-1", "sub-2"]  # only the hard steps got a nested scope


def test_scale_chooses_among_candidate_outlines():
    outlines = ["no plan", '{"step1": "Find a", "step2": "x"}', '{"step1": "Find b", "step2": "x"}']

    def script(ctx: ScriptContext) -> str:
        if "Decompose the math problem" in ctx.text:
            return outlines[sample_index(ctx) % 3]
        return scale_script(choice="I pick version2")(ctx)

    res, _ = run("scale", script, n=2, outline_versions=3, easy_threshold=0.95)
    assert res.details["outlines"] == [["Find a", "x"], ["Find b", "x"]]  # the unparsable one is dropped
    assert res.details["selected"] == 1 and res.details["subproblems"][0]["text"] == "Find b"


def test_scale_unparsable_scores_count_as_hard_after_retries():
    res, _ = run("scale", scale_script(scores={"Find a": "easy!", "Find b": "0.1"}), n=2, outline_versions=1,
                 score_retries=2)
    assert res.details["selection"] == "only candidate"
    subs = res.details["subproblems"]
    assert subs[0]["difficulty"] == 1.0 and subs[0]["mode"] == "system2"
    assert [s["score_tries"] for s in subs] == [2, 1, 0]  # retried once; the last step is not scored


def test_scale_with_ffs_inside_hard_steps():
    res, _ = run("scale", scale_script(), n=3, nested="ffs", outline_versions=1)
    sub = res.details["subproblems"][1]
    assert sub["mode"] == "system2" and sub["answer"] == "7"
    assert "cancelled" in statuses(res)  # FFS aborted the nested scope's other samples
    assert res.answer == "4"


def test_scale_probe_difficulty_is_an_option():
    res, _ = run("scale", scale_script(), n=3, difficulty="probe", outline_versions=1, easy_threshold=0.3)
    subs = res.details["subproblems"]
    assert res.details["difficulty_source"] == "probe"
    assert [s["mode"] for s in subs] == ["system1", "system2", "system2"]
    assert subs[0]["difficulty"] < 0.3 < subs[1]["difficulty"]
    assert res.answer == "4"


def test_scale_falls_back_to_the_question_as_the_only_step():
    res, _ = run("scale", lambda ctx: "I would just solve it." if "Decompose" in ctx.text else "\\boxed{4}", n=2)
    assert res.details["decomposition_fallback"] is True
    assert len(res.details["subproblems"]) == 1 and res.details["subproblems"][0]["mode"] == "system2"
    assert res.answer == "4"


# -- composition and budgets ---------------------------------------------------------------
def test_confidence_stop_inside_self_consistency():
    res, _ = run("self_consistency", by_sample(["\\boxed{4}", "\\boxed{4}", "\\boxed{5}"]), n=6,
                 inner="deepconf", groups=2, inner_params={"warmup": 1, "window": 4})
    assert res.details["inner"] == "deepconf"
    assert len(res.details["group_answers"]) == 2
    assert res.answer is not None


# DeepPrune with the answer judge: the embedding judge is tested in tests/test_deepprune_*.
POLICY_CASES = [(name, {"judge": "answer"} if name == "deepprune" else {}) for name in POLICY_NAMES] + [
    ("scale", {"nested": "ffs"}), ("self_consistency", {"inner": "ffs", "groups": 2}),
    ("self_consistency", {"inner": "deepconf", "inner_params": {"warmup": 1, "window": 4}}),
    ("deepconf", {"mode": "offline"})]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize("name,extra", POLICY_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(POLICY_CASES)])
@given(budget=st.integers(0, 120), lengths=st.lists(st.integers(0, 40), min_size=1, max_size=5))
def test_no_policy_exceeds_the_request_budget(name, extra, budget, lengths):
    replies = ["x" * k + f"\\boxed{{{k % 3}}}" for k in lengths]
    params = {"n": 4, **extra}
    if name == "deepconf":
        params.update(warmup=2, window=4)
    if name == "scale":
        params.update(probe_tokens=16, decompose_tokens=24)
        script = lambda ctx: "1. a\n2. b" if "Decompose" in ctx.text else by_sample(replies)(ctx)  # noqa: E731
    else:
        script = by_sample(replies)
    res, _ = run(name, script, budget=budget, max_new_tokens=60, tokens_per_step=3, **params)
    assert res.usage["generated_tokens"] <= budget
    assert sum(t.tokens for t in res.threads) <= budget
