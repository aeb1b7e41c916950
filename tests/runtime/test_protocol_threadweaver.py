from parareason.runtime.limits import Limits
from tests.support.protocol_helpers import contexts, run_protocol

BLOCK = "Plan <Parallel>\n<Outlines>\n<Outline>1: even</Outline>\n<Outline>2: odd</Outline>\n</Outlines>"


def tw_script(ctx):
    said = ctx.assistant_text
    if said.endswith("1:"):
        return " even works</Thread> ignored"
    if said.endswith("2:"):
        return " odd fails</Thread>"
    if "</Parallel>" in said:
        return "So \\boxed{2}"
    return BLOCK


def test_parallel_block_forks_and_joins_with_exact_ids():
    r, be = run_protocol(tw_script, "threadweaver", tokens_per_step=2)
    root, b1, b2 = r.threads
    assert (b1.parent, b2.parent) == (root.id, root.id)
    assert [t.reason for t in r.threads] == ["eos", "thread_closed", "thread_closed"]
    assert r.answer == "2"
    first = contexts(be, root.id)[0]
    block_ctx = first + BLOCK
    # each branch sees the whole shared prefix up to the block, then its thread header
    assert contexts(be, b1.id) == [block_ctx + "\n<Thread>\n1:"]
    assert contexts(be, b2.id) == [block_ctx + "\n<Thread>\n2:"]
    # the parent continues with both threads in its context, in order, then </Parallel>
    assert contexts(be, root.id)[1] == (block_ctx + "\n<Thread>\n1: even works</Thread>"
                                        "\n<Thread>\n2: odd fails</Thread>\n</Parallel>\n")
    # the branches' ids were copied, not re-tokenized: the resumed context is a trie path
    submitted = [q for q in be.submitted if q.seq_id.split("|")[1] == root.id][1]
    branch_ids = [q for q in be.submitted if q.seq_id.split("|")[1] == b1.id][0].input_ids
    assert submitted.input_ids[:len(branch_ids)] == branch_ids


def test_unclosed_block_and_unclosed_thread():
    r, _ = run_protocol(lambda c: "x <Parallel>\n<Outlines>\n1: a", "threadweaver")
    assert r.threads[0].reason == "unclosed_parallel (eos)"

    def script(ctx):
        if ctx.assistant_text.endswith("1:"):
            return " never closes"
        return "fin" if "</Parallel>" in ctx.assistant_text else "<Parallel><Outlines>1: only</Outlines>"
    r, be = run_protocol(script, "threadweaver")
    assert r.threads[1].reason == "unclosed_thread (eos)"
    # the runtime closes the thread tag for the parent
    assert contexts(be, "s0.t0")[1].endswith("1: never closes</Thread>\n</Parallel>\n")


def test_nested_blocks_respect_depth():
    def script(ctx):
        said = ctx.assistant_text
        if said.endswith(":"):
            return "<Parallel><Outlines>1: x\n2: y</Outlines>"  # every thread opens a block again
        if said.endswith("</Parallel>\n"):
            return " done</Thread>"
        return "<Parallel><Outlines>1: x\n2: y</Outlines>"
    r, _ = run_protocol(script, "threadweaver", limits=Limits(max_spawn_depth=2, tokens_per_request=5000))
    assert any(t.reason == "limit:max_spawn_depth" for t in r.threads)
    assert all(t.status != "running" for t in r.threads)


def test_empty_outlines():
    r, _ = run_protocol(lambda c: "<Parallel><Outlines>\n</Outlines>", "threadweaver")
    assert r.threads[0].reason == "empty_parallel"
