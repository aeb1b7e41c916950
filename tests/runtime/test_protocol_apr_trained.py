"""APR trained dialect: the scripted model replays a trace written by the reference's own
generator (tests/fixtures/apr_trace_dict.json); the contexts must match it char for char
(the scripted tokenizer is one token per character)."""
import json
from pathlib import Path

from parareason.grading import is_correct
from parareason.runtime.limits import Limits
from parareason.runtime.protocols import apr_format as fmt
from tests.support.protocol_helpers import contexts, run_protocol

TD = json.loads((Path(__file__).parents[1] / "fixtures" / "apr_trace_dict.json").read_text())
MAIN0, MAIN1 = TD["main_calls"]
SUBS = [s["main_calls"][0] for s in TD["sub_calls"][0]]
PREFIX = "Moving to Node #0\nCurrent State: 10:[1, 2, 3, 4], Operations: []"
REWRITTEN = MAIN1[:MAIN1.index("<End Sub Searches>\n") + len("<End Sub Searches>\n")]
TRAINED = {"dialect": "trained"}


def roles(r):
    return [e["role"] for e in r.trace if e["ev"] in ("thread", "spawn", "fork")]


def replay(ctx):
    """The checkpoint: continue each context exactly as the reference's training trace does."""
    for trace in [MAIN0, MAIN1, *SUBS]:
        if trace.startswith(ctx.text) and len(trace) > len(ctx.text):
            return trace[len(ctx.text):]
    raise AssertionError(f"context not in the reference traces: {ctx.text!r}")


def test_reference_trace_replayed_token_for_token():
    r, be = run_protocol(replay, "apr", config=TRAINED, prompt=PREFIX, max_new_tokens=2000,
                         limits=Limits(tokens_per_thread=2000))
    root, c0, c1, cont = r.threads
    assert roles(r) == ["root", "child", "child", "root"]
    assert (c0.parent, c1.parent, cont.parent) == (root.id, root.id, None)
    assert contexts(be, root.id) == [PREFIX]  # no chat template: the trace prefix itself
    # children start from the prefix the reference builds for the called nodes
    assert contexts(be, c0.id) == ["Moving to Node #0,0,0\nCurrent State: 10:[2, 2], Operations: ['1+4=5', '5-3=2']"]
    assert contexts(be, c1.id) == ["Moving to Node #0,0,1\nCurrent State: 10:[5, 5], Operations: ['1+4=5', '2+3=5']"]
    assert SUBS[0].startswith(contexts(be, c0.id)[0] + "\n") and SUBS[1].startswith(contexts(be, c1.id)[0] + "\n")
    # the parent's context is rewritten exactly as the reference's second main call
    assert contexts(be, cont.id) == [REWRITTEN]
    assert root.reason == "continued: sub_searches_returned" and cont.reason == "eos"
    # the answer is the solution path, and it really solves the problem
    assert r.answer == fmt.search_result(MAIN1)
    assert r.answer.startswith("Moving to Node #0\n") and r.answer.endswith("10,10 equal: Goal Reached")
    assert is_correct(r.answer, "countdown:10:[1, 2, 3, 4]") is True
    kinds = [e["kind"] for e in r.trace if e["ev"] == "protocol"]
    assert kinds == ["sub_searches", "join", "continue"]


def test_countdown_prompt_becomes_the_apr_prefix():
    from parareason.io.countdown import prompt_for
    from parareason.grading.countdown import CountdownProblem

    prompt = prompt_for(CountdownProblem(10, (1, 2, 3, 4)), "instruct")
    r, be = run_protocol(replay, "apr", config=TRAINED, prompt=prompt, max_new_tokens=2000,
                         limits=Limits(tokens_per_thread=2000))
    assert contexts(be, "s0.t0") == [PREFIX]
    assert r.answer.endswith("Goal Reached")


def test_budgets_in_the_child_prefixes():
    cfg = {**TRAINED, "budget": 4096, "avg_sub_call": True, "sub_call_budget": 2}
    seen = []

    def script(ctx):
        seen.append(ctx.text)
        if ctx.text.startswith("Sub Call Budget: 2 Moving to Node #0\n") and "<Sub Searches>" not in ctx.text:
            return MAIN0[len(PREFIX):]
        return "\nNo solution found.\n"
    run_protocol(script, "apr", config=cfg, prompt="Reach 10 using the numbers [1, 2, 3, 4]: make it equal 10",
                 max_new_tokens=2000, limits=Limits(tokens_per_thread=2000))
    assert seen[0] == "Sub Call Budget: 2 " + PREFIX
    # 4096 over two children = 2048, rounded up to a multiple of 512 (avg_sub_call)
    assert "Token Budget: 2048 Moving to Node #0,0,0\nCurrent State: 10:[2, 2], Operations: ['1+4=5', '5-3=2']" in seen


def test_model_written_results_block_becomes_a_call():
    """decode_trace: a model-written `<Sub Searches>` is replaced by `<Calling Sub Searches>`."""
    head = MAIN0[len(PREFIX):MAIN0.index("<Calling Sub Searches>")]
    call_tail = MAIN0[MAIN0.index("<Calling Sub Searches>") + len("<Calling Sub Searches>"):]

    def script(ctx):
        if ctx.text == PREFIX:
            return head + "<Sub Searches>\n<Goal Reached in Sub Search 0 at level 1 at Node #0,0,0>"
        if ctx.text.endswith("<Calling Sub Searches>") and ctx.text.startswith(PREFIX):
            return call_tail
        return replay(ctx)
    r, be = run_protocol(script, "apr", config=TRAINED, prompt=PREFIX, max_new_tokens=2000,
                         limits=Limits(tokens_per_thread=2000))
    first, cont = r.threads[0], r.threads[1]
    assert first.reason == "continued: sub_searches_replaced"
    assert contexts(be, cont.id) == [PREFIX + head + "<Calling Sub Searches>"]
    assert roles(r) == ["root", "root", "child", "child", "root"]
    assert contexts(be, r.threads[4].id) == [REWRITTEN]


def test_malformed_call_and_markers_in_the_prompt():
    bad = "\n<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #9,9\n<End Calling Sub Searches>\n"
    r, _ = run_protocol(lambda c: bad, "apr", config=TRAINED, prompt=PREFIX)
    [t] = r.threads
    assert t.reason.startswith("malformed_sub_search: sub search at unknown node #9,9")
    # a calling block inside the user's prompt is data: no child is created
    prompt = PREFIX + bad.rstrip("\n")
    r, _ = run_protocol(lambda c: "", "apr", config=TRAINED, prompt=prompt)
    assert len(r.threads) == 1 and r.threads[0].reason == "eos"


def _replay_then_stop(ctx):
    """The reference trace where it has the context; the rewritten 'no solution' context
    it never saw ends at once (the sample must finish, not fail)."""
    try:
        return replay(ctx)
    except AssertionError:
        return ""


def test_refused_children_report_no_solution():
    r, be = run_protocol(_replay_then_stop, "apr", config=TRAINED, prompt=PREFIX, max_new_tokens=2000,
                         limits=Limits(max_spawn_depth=0, tokens_per_thread=2000))
    assert [t.status for t in r.threads[1:3]] == ["limit", "limit"]
    rewritten = contexts(be, r.threads[3].id)[0]
    assert "<No Solution in Sub Search 0 at level 1 at Node #0,0,0>\n" \
           "<No Solution in Sub Search 1 at level 1 at Node #0,0,1>\n<End Sub Searches>\n" in rewritten


def test_calls_are_bounded():
    """A model that calls empty sub searches forever is stopped after max_calls decodes."""
    loop = "\n<Calling Sub Searches>\n<End Calling Sub Searches>\n"
    r, _ = run_protocol(lambda c: loop, "apr", config={**TRAINED, "max_calls": 3}, prompt=PREFIX)
    assert len(r.threads) == 3 and r.threads[-1].reason.startswith("max_calls")
