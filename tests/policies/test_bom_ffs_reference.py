"""Best-of-Majority's frequency filter relative to N, and FFS's strict paper rule."""
from __future__ import annotations

from tests.support.scripted_policies import by_sample, run, statuses


def test_bom_frequency_is_relative_to_all_samples_drawn():
    cut = "x" * 60  # cut by the token cap: no answer
    replies = ["\\boxed{4}", "\\boxed{4}", "?" * 5 + "\\boxed{5}", cut, cut]
    # 5 has 1 of 3 answers (33%) but 1 of N = 5 samples (20%): the paper's filter drops it at 0.3
    res, _ = run("bom", by_sample(replies), n=5, min_fraction=0.3, max_new_tokens=30)
    assert res.details["drawn"] == 5 and res.details["filtered_out"] == 1
    assert [c["answer"] for c in res.details["candidates"]] == ["4"]
    assert res.details["candidates"][0]["frequency"] == 0.4
    assert res.details["score"] == "mean_logprob" and res.details["filter_fallback"] is False


def test_bom_keeps_every_answer_when_none_is_frequent_and_says_so():
    res, _ = run("bom", by_sample(["\\boxed{4}", "\\boxed{5}", "\\boxed{6}"]), n=3, min_fraction=0.5)
    assert res.details["filter_fallback"] is True and res.answer is not None


def test_ffs_strict_rule_takes_the_first_trace_to_end_even_without_an_answer():
    replies = ["no answer", "x" * 20 + "\\boxed{4}", "y" * 40 + "\\boxed{5}"]
    strict, _ = run("ffs", by_sample(replies), n=3, strict=True)
    assert strict.details["first_finished"] == ["s0"] and strict.answer is None
    assert strict.details["rule"] == "first to end"
    default, _ = run("ffs", by_sample(replies), n=3)
    assert default.details["first_finished"] == ["s1"] and default.answer == "4"
    assert default.details["rule"] == "first to end with an answer"
    assert statuses(default).count("cancelled") == 1
