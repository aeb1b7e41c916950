"""SCALE on the real scheduler with the ScriptedBackend test double (no model): the script
answers the decomposition, outline choice, difficulty and step prompts."""
from __future__ import annotations

from typing import Callable

from parareason.backends.scripted import ScriptContext
from tests.support.scripted_policies import run, sample_index, statuses


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
