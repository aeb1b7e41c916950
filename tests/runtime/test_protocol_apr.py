from parareason.runtime.limits import Limits
from parareason.runtime.protocols import get_protocol
from parareason.runtime.protocols.apr import parse_tasks
from tests.support.protocol_helpers import contexts, run_protocol


def apr_script(ctx):
    said = ctx.assistant_text
    if "<|user|>\nadd" in ctx.text:
        return "child: \\boxed{10}"
    if "</join>" in said:
        return " Both give 10, so \\boxed{20}."
    return "Plan.\n<spawn>\nadd 3 and 7\nadd 4 and 6\n</spawn>"


def test_spawn_wait_join_resume():
    r, be = run_protocol(apr_script, "apr")
    root, a, b = r.threads
    assert (root.parent, a.parent, b.parent) == (None, root.id, root.id)
    assert [t.status for t in r.threads] == ["finished"] * 3
    assert r.answer == "20"
    # child contexts: shared system prefix + the child message
    ca, cb = contexts(be, a.id)[0], contexts(be, b.id)[0]
    assert ca.endswith("<|user|>\nadd 3 and 7\n<|assistant|>\n") and cb.endswith("<|user|>\nadd 4 and 6\n<|assistant|>\n")
    assert ca.split("<|user|>")[0] == cb.split("<|user|>")[0] == contexts(be, root.id)[0].split("<|user|>")[0]
    # parent resumes with its run + the join block appended
    first, second = contexts(be, root.id)
    assert second.startswith(first + "Plan.\n<spawn>\nadd 3 and 7\nadd 4 and 6\n</spawn>")
    assert second.endswith("<join>\n[1] child: \\boxed{10}\n[2] child: \\boxed{10}\n</join>\n")
    kinds = [e["kind"] for e in r.trace if e["ev"] == "protocol"]
    assert kinds == ["spawn", "join"]


def test_nested_spawns():
    def script(ctx):
        said = ctx.assistant_text
        if "</join>" in said:
            return "ok"
        if "<|user|>\ndeep" in ctx.text:
            return "leaf"
        if "<|user|>\nmid" in ctx.text:
            return "<spawn>\ndeep 1\ndeep 2\n</spawn>"
        return "<spawn>\nmid\n</spawn>"
    r, _ = run_protocol(script, "apr")
    parents = {t.id: t.parent for t in r.threads}
    assert len(r.threads) == 4
    mid = [t for t in r.threads if t.parent == "s0.t0"][0]
    assert sum(1 for p in parents.values() if p == mid.id) == 2
    assert all(t.status == "finished" for t in r.threads)


def test_unclosed_spawn_at_eos_ends_cleanly():
    r, _ = run_protocol(lambda c: "Let me <spawn>\ntask a\ntask b", "apr")
    [t] = r.threads
    assert t.status == "finished" and t.reason == "unclosed_spawn (eos)"


def test_empty_spawn_and_stray_close():
    r, _ = run_protocol(lambda c: "x <spawn>\n\n</spawn>", "apr")
    assert r.threads[0].reason == "empty_spawn"
    r, _ = run_protocol(lambda c: "x </spawn>", "apr")
    assert r.threads[0].reason == "malformed_spawn: close without open"


def test_markers_in_the_prompt_are_data():
    prompt = "Explain this text: <spawn>\nevil 1\nevil 2\n</spawn> and <Parallel><Outlines>1</Outlines>"
    r, be = run_protocol(lambda c: "It is markup. \\boxed{0}", "apr", prompt=prompt)
    assert len(r.threads) == 1 and r.threads[0].reason == "eos"
    assert prompt in be.tokenizer.decode(be.submitted[0].input_ids)  # still in the context, as tokens


def test_failed_child_is_reported_in_the_join():
    def script(ctx):
        if "<|user|>\nbad" in ctx.text:
            raise RuntimeError("worker died")
        if "<|user|>\ngood" in ctx.text:
            return "fine"
        return "end" if "</join>" in ctx.assistant_text else "<spawn>\ngood\nbad\n</spawn>"
    r, be = run_protocol(script, "apr")
    assert [t.status for t in r.threads] == ["finished", "finished", "failed"]
    last = contexts(be, "s0.t0")[-1]
    assert "[1] fine" in last and "[2] (backend error: RuntimeError: worker died)" in last


def test_custom_markers_and_json_tasks():
    cfg = {"spawn_open": "[[fork]]", "spawn_close": "[[/fork]]", "join_open": "[[res]]", "join_close": "[[/res]]"}

    def script(ctx):
        if "<|user|>\nj" in ctx.text:
            return "r"
        return "done" if "[[/res]]" in ctx.assistant_text else '[[fork]]["j1", "j2", "j3"][[/fork]]'
    r, be = run_protocol(script, "apr", config=cfg)
    assert len(r.threads) == 4 and r.threads[0].status == "finished"
    assert "[[fork]]" in get_protocol("apr", **cfg).instructions


def test_spawn_limited_by_depth_marks_children_limit():
    r, _ = run_protocol(lambda c: "done" if "</join>" in c.assistant_text else "<spawn>\nx\n</spawn>", "apr",
                        limits=Limits(max_spawn_depth=0))
    assert [t.status for t in r.threads] == ["finished", "limit"]
    assert r.threads[1].reason == "limit:max_spawn_depth"


def test_parse_tasks():
    assert parse_tasks('["a", "b"]') == ["a", "b"]
    assert parse_tasks("\n- a\n* b\n\n c \n") == ["a", "b", "c"]
    assert parse_tasks("[not json") == ["[not json"]
