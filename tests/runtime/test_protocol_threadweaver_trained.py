"""ThreadWeaver trained dialect: a scripted model replays a trajectory in the reference format
(tests/fixtures/threadweaver_trajectory.txt); the contexts the runtime builds must be that
trajectory, char for char (one token per character)."""
from pathlib import Path

from parareason.runtime.limits import Limits
from parareason.runtime.protocols.threadweaver_trained import outline_numbers
from tests.support.protocol_helpers import contexts, run_protocol

TRAJ = (Path(__file__).parents[1] / "fixtures" / "threadweaver_trajectory.txt").read_text()
HEAD = TRAJ[:TRAJ.index("</Outlines>") + len("</Outlines>")]
T1 = TRAJ[TRAJ.index("\n<Thread>\n1:"):TRAJ.index("</Thread><Thread>") + len("</Thread>")]
T2 = TRAJ[TRAJ.index("<Thread>\n2:"):TRAJ.rindex("</Thread>") + len("</Thread>")]
JOINED = HEAD + T1 + T2 + "\n"  # the continuation after a block: "\n"
TAIL = TRAJ[len(JOINED):]
TRAINED = {"dialect": "trained"}


def replay(ctx):
    said = ctx.assistant_text
    for header, body in (("\n<Thread>\n1:", T1), ("\n<Thread>\n2:", "\n" + T2)):
        if said.endswith(header):
            return body[len(header):]
    if said == JOINED:
        return TAIL
    assert said == "", said
    return HEAD + " and text after the stop"


def test_reference_trajectory_rebuilt_token_for_token():
    r, be = run_protocol(replay, "threadweaver", config=TRAINED, prompt="Solve 2x = 4.", tokens_per_step=4)
    root, b1, b2 = r.threads
    first, second = contexts(be, root.id)
    # the trained prompt: the question and the reference's instruction, no system prompt
    assert first == ("<|user|>\nSolve 2x = 4. Let's think step by step and output the final answer within "
                     "\\boxed{}.\n<|assistant|>\n")
    assert contexts(be, b1.id) == [first + HEAD + "\n<Thread>\n1:"]
    assert contexts(be, b2.id) == [first + HEAD + "\n<Thread>\n2:"]
    # joined threads stand against each other, then the model continues after "\n"
    assert second == first + JOINED
    assert "</Thread><Thread>" in second and "</Parallel>" not in second
    assert [t.reason for t in r.threads] == ["eos", "thread_closed", "thread_closed"]
    assert r.answer == "2"


def test_conclusion_continuation():
    def script(ctx):
        said = ctx.assistant_text
        if said.endswith("<Conclusion>\n"):
            return "Only x = 2 works.\n</Conclusion>\n</Parallel>\n\\boxed{2}"
        return replay(ctx)
    r, be = run_protocol(script, "threadweaver", config={**TRAINED, "conclusion": True})
    assert contexts(be, "s0.t0")[1].endswith(HEAD + T1 + T2 + "\n<Conclusion>\n")
    assert r.answer == "2"


def test_a_thread_without_close_ends_the_block_and_the_trajectory():
    def script(ctx):
        if ctx.assistant_text.endswith("\n<Thread>\n2:"):
            return " ran out"  # EOS without </Thread>
        return replay(ctx)
    r, be = run_protocol(script, "threadweaver", config=TRAINED)
    root = r.threads[0]
    assert root.reason == "parallel_closed: a thread ended without </Thread>"
    assert len(contexts(be, root.id)) == 1  # no further decoding
    assert r.threads[2].reason == "eos"


def test_nested_blocks_are_thread_text():
    """A branch's `</Outlines>` does not stop it: no grandchildren, the block is literal text."""
    nested = " <Parallel>\n<Outlines>\n<Outline>1: deeper</Outline>\n</Outlines> more text\n</Thread>"

    def script(ctx):
        said = ctx.assistant_text
        if said.endswith("\n<Thread>\n1:") or said.endswith("\n<Thread>\n2:"):
            return nested
        if said.endswith("</Thread>\n"):
            return "done \\boxed{1}"
        return HEAD
    r, be = run_protocol(script, "threadweaver", config=TRAINED, limits=Limits(max_spawn_depth=5))
    assert len(r.threads) == 3 and all(t.parent in (None, "s0.t0") for t in r.threads)
    assert contexts(be, "s0.t0")[1].count("<Outline>1: deeper</Outline>") == 2


def test_outline_numbers_from_the_reference_regex():
    assert outline_numbers("<Outlines>\n<Outline> 1.2 : a</Outline><Outline>3: b<Outline>3: again") == ["1.2", "3"]
    assert outline_numbers("<Outline>1: before the block</Outline><Outlines>\n</Outlines>") == []
    assert outline_numbers("no block <Outline>1: x") == []


def test_no_outline_numbers_decodes_on_and_iterations_are_bounded():
    r, be = run_protocol(lambda c: "<Parallel>\n<Outlines>\nnothing numbered\n</Outlines>", "threadweaver",
                         config={**TRAINED, "max_iterations": 3})
    [root] = r.threads
    assert root.reason == "max_iterations" and len(contexts(be, root.id)) == 4


def test_markers_in_the_prompt_are_data():
    prompt = "Explain <Parallel>\n<Outlines>\n<Outline>1: x</Outline>\n</Outlines> literally."
    r, _ = run_protocol(lambda c: "It is markup. \\boxed{0}", "threadweaver", config=TRAINED, prompt=prompt)
    assert len(r.threads) == 1 and r.threads[0].reason == "eos"
