"""ThreadWeaver in its trained format: drives the released ThreadWeaver checkpoints.

Matches `ParallelBranchingController` in github.com/facebookresearch/threadweaver
@ 26622324ad0fcad9be53a692d0a8f214a8fa5ee8,
`threadweaver_rl/verl/experimental/agent_loop/single_turn_agent_loop.py` (the token-level
orchestrator of RL rollouts; `branching_generate` in `threadweaver_sft/src/simple_eval.py`
is its text-level twin):

* Sequential phase: decode until `</Outlines>` (or EOS). The outline numbers are the
  `<Outline>\\s*N(.M)*\\s*:` numbers after the last `<Outlines>`, duplicates dropped.
  None: decoding simply goes on.
* Parallel phase: one branch per number, from the context + `\\n<Thread>\\n{N}:`, stopped
  at `</Thread>` (or EOS). A branch may not open a block of its own: `</Outlines>` does not
  stop it, so a nested block is literal thread text (as `get_parallel_stats` in
  threadweaver_sft/src/rewards.py reads it).
* Join: the first branch keeps its header `\\n<Thread>\\n{N}:`, later ones get
  `<Thread>\\n{N}:`, so joined threads stand against each other (`</Thread><Thread>`); the
  branches' own token ids follow their headers (never re-tokenized); a branch that did not
  end with `</Thread>` (EOS, length, a limit) gets `\\n</Thread>`.
* Continuation: `\\n` (or `\\n<Conclusion>\\n` with `conclusion=true`, the reference's
  `no_conclusion=false`); the model writes `</Parallel>` itself. When a branch ended
  without `</Thread>`, the block is closed with `\\n</Parallel>` (or
  `\\n<Conclusion>\\n</Conclusion>\\n</Parallel>`) and the trajectory ends, as the
  reference's `eos_seen` does.
* The prompt is the single user turn `{question} {instruction}` under the checkpoint's chat
  template (`data_generation/src/save_dataset.py`, default instruction there).

The default is `conclusion=false`: the reference's config default is `no_conclusion: False`,
but every published training command (README, train_par.slurm) sets
`no_conclusion=true`. Deliberate differences: the outline numbers are read from the
current run's text only (the reference searches its whole context for the last
`<Outlines>`, which includes the prompt: markers a user types stay data here); branches a
runtime limit refuses are left out of the join; `max_iterations` (32, the reference's
safeguard) counts sequential runs and joins per trajectory.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from parareason.runtime.protocols.base import ThreadOps, closed_by, end_reason
from parareason.runtime.protocols.joining import JoiningProtocol
from parareason.runtime.thread import Thread

OUTLINE_RE = re.compile(r"<Outline>\s*([0-9]+(?:\.[0-9]+)*)\s*:")
OUTLINES_OPEN, OUTLINES_CLOSE, THREAD_CLOSE = "<Outlines>", "</Outlines>", "</Thread>"


def outline_numbers(text: str) -> list[str]:
    """The outline numbers after the last `<Outlines>` of `text`, first occurrence kept."""
    at = text.rfind(OUTLINES_OPEN)
    return list(dict.fromkeys(OUTLINE_RE.findall(text[at:]))) if at >= 0 else []


class ThreadWeaverTrainedProtocol(JoiningProtocol):
    name = "threadweaver"
    dialect = "trained"
    children_key = "block"
    defaults: dict[str, Any] = {
        "conclusion": False,  # True: the reference's no_conclusion=false
        "instruction": "Let's think step by step and output the final answer within \\boxed{}.",
        "max_iterations": 32,
    }

    def messages(self, prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return msgs + [{"role": "user", "content": f"{prompt} {self.config['instruction']}".strip()}]

    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        sample.main = ops.new_thread(sample, prompt_ids, role="root", stop_strings=(OUTLINES_CLOSE,))

    def _count(self, thread: Thread) -> bool:
        """One more iteration; False once the trajectory used up `max_iterations`."""
        thread.meta["iterations"] = thread.meta.get("iterations", 0) + 1
        limit = self.config["max_iterations"]
        return limit is None or thread.meta["iterations"] <= int(limit)

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        if thread.role == "branch":
            closed = closed_by(ops, thread, THREAD_CLOSE, matched_stop) is not None
            ops.finish(thread, "thread_closed" if closed else end_reason(finish_reason, matched_stop))
            return
        text = closed_by(ops, thread, OUTLINES_CLOSE, matched_stop)
        if text is None:
            ops.finish(thread, end_reason(finish_reason, matched_stop))
            return
        if not self._count(thread):
            ops.finish(thread, "max_iterations")
            return
        nums = outline_numbers(text)
        if not nums:
            ops.record("no_outlines", thread=thread.id)
            ops.resume(thread)  # the reference stays sequential and decodes on
            return
        ops.wait(thread)
        branches = []
        for k, num in enumerate(nums):
            br = ops.fork(thread, ops.encode(f"\n<Thread>\n{num}:"), role="branch", child_index=k,
                          stop_strings=(THREAD_CLOSE,))
            br.meta["outline"] = num
            branches.append(br)
        self.await_children(ops, thread, branches, "parallel", outlines=nums)

    def append_results(self, ops: ThreadOps, parent: Thread, children: list[Thread]) -> None:
        eos = ops.tokenizer.eos_token_ids
        first, ended_early = True, False
        for br in children:
            if not br.own_ids:
                continue  # refused by a limit: never ran
            num = br.meta["outline"]
            header = ops.encode(f"\n<Thread>\n{num}:")
            gen = br.own_ids[len(header):]
            cut = next((i for i, tok in enumerate(gen) if tok in eos), None)
            if cut is not None:
                gen, ended_early = gen[:cut], True
            if br.reason != "thread_closed":
                ended_early = True
                gen = gen + ops.encode("\n" + THREAD_CLOSE)
            ops.append(parent, (header if first else ops.encode(f"<Thread>\n{num}:")) + gen)
            first = False
        conclusion = bool(self.config["conclusion"])
        if ended_early:
            tail = "\n<Conclusion>\n</Conclusion>\n</Parallel>" if conclusion else "\n</Parallel>"
        else:
            tail = "\n<Conclusion>\n" if conclusion else "\n"
        ops.append(parent, ops.encode(tail))
        parent.meta["block_ended_early"] = ended_early
        ops.record("join", thread=parent.id, ended_early=ended_early)

    def _join(self, ops: ThreadOps, parent: Thread) -> None:
        self.append_results(ops, parent, parent.meta.pop(self.children_key, []))
        if parent.meta.pop("block_ended_early"):
            ops.finish(parent, "parallel_closed: a thread ended without </Thread>")
        elif not self._count(parent):
            ops.finish(parent, "max_iterations")
        else:
            ops.resume(parent)
