"""APR in its trained format: drives the released APR checkpoints (Countdown search traces).

Matches the inference loop of github.com/Parallel-Reasoning/APR
@ 557792831087b701e0d41912eaf785c8d73e6f69, `src/eval/eval_apr.py` (`call_search`,
`decode_trace`, `get_prefix`) with the text functions of `src/eval/parallel_infernce_utils.py`
(see apr_format.py):

1. The root search starts from `Moving to Node #0\\nCurrent State: T:[a, b, c, d], Operations: []`
   (a Countdown problem in the prompt is turned into that prefix; a prompt that already is
   an APR prefix is used as it is), after BOS and without a chat template.
2. Every call decodes with the stop string `<Sub Searches>`: the model must never write the
   results block itself, so a model-written `<Sub Searches>` is replaced by
   `<Calling Sub Searches>` and decoding goes on (`decode_trace`).
3. A trace whose last line holds `<End Calling Sub Searches>` calls one child per
   `<Start Sub Search i at level L> Moving to Node #...` line; each child starts from
   `[Token Budget: N ]Moving to Node #id\\nCurrent State: T:[...], Operations: [...]`.
4. When all children ended, the parent's trace is rewritten: the calling block becomes
   `<Sub Searches>` + per child `<Goal Reached in Sub Search i at level 1 at Node #id>` and
   its solution path, or `<No Solution in Sub Search i ...>`, + `<End Sub Searches>`; the
   rewritten trace is decoded again. Children never call sub searches themselves (the
   reference nests one level only: a child's call is just text).
5. A search's answer is its solution path (`get_search_result`); grade it with
   `parareason.grading.countdown`.

Each decode call of the reference is one thread here (a rewrite cannot be appended to a
token path): the continuation is a new thread with the old one's parent and role, and the
old one ends with reason `continued: ...`. Like the reference, which sends text to a
completion endpoint, every call's context is the trace text tokenized afresh:
`[BOS] + encode(trace)`, so contexts match the reference's token for token. Deliberate
differences: markers count only after the root prefix (the user prompt is data); a
calling block the reference cannot parse ends the search with `malformed_sub_search: ...`
(the reference's exception ends it too, with no answer); children a limit refuses, or
that fail, report `No Solution` (the reference's worker error does the same).
"""
from __future__ import annotations

from typing import Any, Sequence

from parareason.grading.countdown import find_problem
from parareason.runtime.protocols import apr_format as fmt
from parareason.runtime.protocols.base import ThreadOps, closed_by, end_reason
from parareason.runtime.protocols.joining import JoiningProtocol
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread

_APR_PREFIXES = ("Moving to Node #", "Sub Call Budget:", "Token Budget:")


def trained_root_prefix(prompt: str, sub_call_budget: int | None) -> str:
    """The root search's prompt: an APR prefix as written, else one built from the
    Countdown problem found in the prompt, else the prompt itself."""
    if prompt.startswith(_APR_PREFIXES):
        return prompt
    problem = find_problem(prompt)
    if problem is None:
        return prompt
    return fmt.root_prefix(problem.target, problem.nums, sub_call_budget)


class APRTrainedProtocol(JoiningProtocol):
    name = "apr"
    dialect = "trained"
    children_key = "sub_searches"
    defaults: dict[str, Any] = {
        "budget": None,  # child "Token Budget: N " (eval_apr's `budget`; None as in its call_search)
        "avg_sub_call": False,  # split `budget` over the children, rounded up to 512
        "sub_call_budget": None,  # root "Sub Call Budget: N " (eval_apr --use_subcall_cond)
        "add_bos": True,  # eval_apr ADD_BOS
        "max_calls": 32,  # decode calls per search chain (the reference loops unbounded)
    }

    def messages(self, prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
        return [{"role": "user", "content": prompt}]  # unused: the trained prompt has no chat template

    # -- segments -------------------------------------------------------------------------
    def _segment(self, ops: ThreadOps, sample: Any, text: str, *, parent: Thread | None, role: str,
                 user_len: int, child_index: int = 0) -> Thread:
        bos = ops.bos_ids() if self.config["add_bos"] else []
        t = ops.new_thread(sample, bos + ops.encode(text), parent=parent, role=role,
                           stop_strings=(fmt.RESULTS_OPEN,), child_index=child_index)
        t.meta["apr"] = {"text": text, "user_len": user_len}
        return t

    def _trace(self, ops: ThreadOps, t: Thread) -> str:
        return t.meta["apr"]["text"] + ops.decode(t.own_ids)

    def _continue(self, ops: ThreadOps, old: Thread, text: str, reason: str) -> None:
        """Decode again from `text` in a new thread that takes `old`'s place."""
        calls = old.meta.get("calls", 1) + 1
        if self.config["max_calls"] is not None and calls > int(self.config["max_calls"]):
            ops.finish(old, f"max_calls ({reason})")
            self._maybe_join(ops, old)
            return
        new = self._segment(ops, old.sample, text, parent=old.parent, role=old.role,
                            user_len=old.meta["apr"]["user_len"], child_index=old.meta.get("child_index", 0))
        new.meta["child_index"] = old.meta.get("child_index", 0)
        new.meta["continues"] = old.id
        new.meta["calls"] = calls
        old.meta["continued_by"] = new.id
        if old.parent is not None:  # a child: its parent waits on the new thread instead
            siblings = old.parent.meta.get(self.children_key, [])
            if old in siblings:
                siblings[siblings.index(old)] = new
        if old.sample.main is old:
            old.sample.main = new
        ops.record("continue", thread=old.id, by=new.id, why=reason)
        ops.finish(old, f"continued: {reason}")
        self._maybe_join(ops, old)

    def _maybe_join(self, ops: ThreadOps, old: Thread) -> None:
        """A child's replacement may already be over (refused by a limit): join then."""
        parent = old.parent
        if parent is None or parent.status != Status.WAITING:
            return
        kids = parent.meta.get(self.children_key)
        if kids is not None and not any(k.live for k in kids):
            self._join(ops, parent)

    # -- protocol hooks -------------------------------------------------------------------
    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        text = trained_root_prefix(sample.prompt, self.config["sub_call_budget"])
        sample.main = self._segment(ops, sample, text, parent=None, role="root", user_len=len(text))

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        info = thread.meta["apr"]
        cut = closed_by(ops, thread, fmt.RESULTS_OPEN, matched_stop)
        if cut is not None:  # the model wrote the results block itself: it must call instead
            gen = ops.decode(thread.own_ids)
            at = gen.rfind(fmt.RESULTS_OPEN)
            if at < 0:  # the marker was dropped by the backend: everything generated precedes it
                at = len(gen)
            self._continue(ops, thread, info["text"] + gen[:at] + fmt.CALL_OPEN, "sub_searches_replaced")
            return
        trace = self._trace(ops, thread)
        if trace.split("\n")[-1] == "":
            trace = trace[:-1]  # decode_trace drops a final empty line
        calls_at = trace.rfind(fmt.CALL_OPEN + "\n")
        if thread.role != "root" or not fmt.is_calling(trace) or calls_at < info["user_len"]:
            ops.finish(thread, end_reason(finish_reason, matched_stop))
            return
        try:
            prefixes, nodes = fmt.parse_sub_searches(trace, self.config["budget"], bool(self.config["avg_sub_call"]))
        except fmt.SubSearchError as e:
            ops.finish(thread, f"malformed_sub_search: {e}")
            return
        ops.wait(thread)
        thread.meta["apr_call"] = (trace, nodes)
        children = []
        for k, prefix in enumerate(prefixes):
            child = self._segment(ops, thread.sample, prefix, parent=thread, role="child", user_len=0, child_index=k)
            child.meta["child_index"] = k
            children.append(child)
        self.await_children(ops, thread, children, "sub_searches", nodes=[n.node for n in nodes])

    def on_thread_end(self, ops: ThreadOps, thread: Thread) -> None:
        if "apr" in thread.meta and "continued_by" not in thread.meta and thread.own_ids:
            thread.answer = fmt.search_result(self._trace(ops, thread))  # the solution path
        super().on_thread_end(ops, thread)

    def _join(self, ops: ThreadOps, parent: Thread) -> None:
        children = parent.meta.pop(self.children_key, [])
        trace, nodes = parent.meta.pop("apr_call")
        results = [fmt.search_result(self._trace(ops, ch)) if ch.status in (Status.FINISHED, Status.LIMIT) and ch.own_ids
                   else None for ch in children]
        ops.record("join", thread=parent.id, children=len(children), solved=sum(r is not None for r in results))
        self._continue(ops, parent, fmt.rewritten_trace(trace, nodes, results), "sub_searches_returned")

    def append_results(self, ops: ThreadOps, parent: Thread, children: list[Thread]) -> None:
        raise AssertionError("APR trained joins by rewriting the trace (_join)")
