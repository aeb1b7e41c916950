"""ParaThinker in its trained format: drives the released ParaThinker checkpoints.

Matches the ParaThinker inference engine, github.com/LeslieKid/vllm-parathinker
@ d30de3c71c49e08ea0944ba6586788fdf53ea4e6 (the `inference` submodule of
github.com/MobileLLM/ParaThinker @ 6d98fae21e824a61971c101d0496ce63d187c51e):
`examples/parathinker/example.py` (prompt template, summary template, stop tokens,
`parthink_size` 4) and `vllm/engine/output_processor/single_step.py` +
`vllm/sequence.py` (`is_think_stage_finished`, `prepare_merged_sequence`); the special
tokens are those `train/train_script.py` adds (`<think1>`..`<think8>`, `</think1>`..
`</think8>`, `<summary>`, `</summary>`), looked up in the checkpoint's tokenizer by
encoding them (one id each on a ParaThinker checkpoint). The summary's context has the
layout the checkpoints were trained on, `train/custom_data_collator.py`
(`ParallelCoTsDataCollator`): the prompt, each path from its `<think{k}>`, then `<summary>`;
there each path's position ids restart after the prompt with `seg_ids` k, and the summary's
continue after the longest path with segment 0 (what the native engine applies).

* Prompt: `[BOS] <｜User｜>{question} You FIRST think ... \\boxed{}.<｜Assistant｜><think>`
  (the example's template, no chat template).
* Path k (1..n_paths) is the prompt + `<think{k}>`; it stops at any `</thinkj>`, `</summary>`
  or EOS, and the engine writes its own `</think{k}>` in place of whichever of those
  ended it (kept so here in the summary's context).
* First-finish: once `finish_ratio` (the engine's `ratio_threshold`, 0.1) of the paths
  ended, the others are cut where they are (`think_stage_over`).
* Summary: the prompt, every path's tokens in path order, then the summary template
  `<summary>By analyzing multiple reasoning processes above, I concluded that: The final
  answer is`; it stops at `</summary>` (and the path ends, as in the reference's stop list).

The engine restarts each path's positions after the prompt, isolates the paths and reuses
their KV for the summary. The embedded engine does the same from these very token ids
when it runs a ParaThinker checkpoint (backends/embedded/parathinker_native.py;
`Result.details["parathinker"] = "native"`); other backends (SGLang, vLLM) cannot, so
they get the flattened context (paths one after another) and
`Result.details["approximation"]` says `"flattened paths"`. Deliberate differences: the example pads the prompt with
`<vllm_pad>` to its 16-token KV blocks and re-encodes its decoded prompt (a second BOS);
both are artifacts of that script and its paged engine, not of the trained format
(LLaMA-Factory SFT data has one BOS and no pads), so we write one BOS and no pads
(`pad_to_block=16` restores the padding). A path that samples `<thinkj>` or `<summary>`
is not rewritten to `<think>` as the engine's sampler does (that needs logits access).
"""
from __future__ import annotations

from typing import Any, Sequence

from parareason.runtime.protocols.base import Protocol, ThreadOps, end_reason
from parareason.runtime.thread import END_STATES, Thread

MAX_PATHS = 8  # the checkpoint has eight path tokens
PATH_CLOSES = tuple(f"</think{k}>" for k in range(1, MAX_PATHS + 1))
SUMMARY_CLOSE = "</summary>"
INSTRUCTION = (" You FIRST think about the reasoning process as an internal monologue     and then summarize the "
               "reasoning process to get the final answer. The summary process MUST BE enclosed     within "
               "<summary> </summary> tags. The final answer MUST BE put in \\boxed{}.")


class ParaThinkerTrainedProtocol(Protocol):
    name = "parathinker"
    dialect = "trained"
    defaults: dict[str, Any] = {
        "n_paths": 4,  # parthink_size of the reference example (and the engine's default)
        "template": "<｜User｜>{question}" + INSTRUCTION + "<｜Assistant｜><think>",  # {question}: the prompt
        "summary_template": "<summary>By analyzing multiple reasoning processes above, I concluded that: "
                            "The final answer is",
        "finish_ratio": 0.1,  # think stage ends once this share of the paths ended (first-finish)
        "add_bos": True,
        "pad_to_block": None,  # 16 = the example's <vllm_pad> padding
        "pad_token": "<vllm_pad>",
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        n = self.config["n_paths"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PATHS:
            raise ValueError(f"parathinker: n_paths must be an integer in 1..{MAX_PATHS}, got {n!r}")
        ratio = self.config["finish_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ValueError(f"parathinker: finish_ratio must be in (0, 1], got {ratio!r}")
        self._prompt_ids: dict[str, list[int]] = {}
        self._summarizing: set[str] = set()
        self._native = False  # set at start: the backend runs ParaThinker's native layout

    def messages(self, prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
        return [{"role": "user", "content": prompt}]  # unused: the trained prompt is the template

    def result_details(self) -> dict[str, Any]:
        return {"parathinker": "native"} if self._native else {"approximation": "flattened paths"}

    def prompt_ids(self, ops: ThreadOps, question: str) -> list[int]:
        c = self.config
        ids = (ops.bos_ids() if c["add_bos"] else []) + ops.encode(c["template"].replace("{question}", question))
        block, pad = c["pad_to_block"], ops.encode(c["pad_token"])
        if block and len(pad) == 1 and (len(ids) + 1) % int(block):
            ids += pad * (int(block) - (len(ids) + 1) % int(block))  # example.py prompts_preprocess
        return ids

    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        ids = self.prompt_ids(ops, sample.prompt)
        self._prompt_ids[sample.id] = ids
        self._native = ops.backend_supports("parathinker_native")
        stops = PATH_CLOSES + (SUMMARY_CLOSE,)
        ops.record("special_tokens", single_ids=all(len(ops.encode(m)) == 1 for m in stops + ("<think1>",)))
        for k in range(1, int(self.config["n_paths"]) + 1):
            path = ops.new_thread(sample, ids, role="path", stop_strings=stops)
            path.meta["k"] = k
            if path.live:  # the engine's forced first token of path k
                ops.append(path, ops.encode(f"<think{k}>"))
        sample.main = None  # the summary, once the think stage ends
        self._maybe_summarize(ops, sample)

    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        if thread.role == "path":
            own = f"</think{thread.meta['k']}>"
            if finish_reason == "eos" or (isinstance(matched_stop, str) and matched_stop != own):
                thread.meta["close_with"] = matched_stop if isinstance(matched_stop, str) else ""
            ops.finish(thread, "path_closed" if matched_stop == own else end_reason(finish_reason, matched_stop))
        else:
            ops.finish(thread, end_reason(finish_reason, matched_stop))

    def on_thread_end(self, ops: ThreadOps, thread: Thread) -> None:
        if thread.role == "path":
            self._maybe_summarize(ops, thread.sample)

    def _maybe_summarize(self, ops: ThreadOps, sample: Any) -> None:
        if sample.id in self._summarizing or sample.id not in self._prompt_ids:
            return
        paths = [t for t in sample.threads if t.role == "path" and t.own_ids]  # refused ones never ran
        ended = sum(t.status in END_STATES for t in paths)
        if ended < len(paths) * float(self.config["finish_ratio"]):
            return
        self._summarizing.add(sample.id)
        ids = list(self._prompt_ids.pop(sample.id))
        for t in paths:
            ids.extend(self._path_tokens(ops, t))
        ids.extend(ops.encode(self.config["summary_template"]))
        ops.record("summary", sample=sample.id, paths=len(paths), ended=ended)
        sample.main = ops.new_thread(sample, ids, role="summary", stop_strings=(SUMMARY_CLOSE,) + PATH_CLOSES)
        for t in paths:  # first-finish: the other paths are cut where they are (after the summary
            if t.live:   # exists, so the sample never looks finished without its main thread)
                ops.finish(t, "think_stage_over")
        self._summarizing.discard(sample.id)

    def _path_tokens(self, ops: ThreadOps, t: Thread) -> list[int]:
        """The path as the summary sees it: `<think{k}>` + its tokens, its own close in place
        of a foreign close or EOS (the engine's replacement)."""
        if not t.own_ids:
            return []  # refused by a limit: never ran
        ids = list(t.own_ids)
        if "close_with" not in t.meta:
            return ids
        wrong = t.meta["close_with"]
        n = len(ops.encode(wrong)) if wrong else 0
        if n and len(ids) > n and ops.decode_raw(ids[-n:]) == wrong:
            ids = ids[:-n]
        return ids + ops.encode(f"</think{t.meta['k']}>")
