"""APR's trained text format: search-trace prefixes, sub-search calls and their results.

Pure text functions, each matching a function of github.com/Parallel-Reasoning/APR
@ 557792831087b701e0d41912eaf785c8d73e6f69:

* `root_prefix`         - `get_prefix` in src/eval/eval_apr.py
* `parse_sub_searches`  - `_get_subsearch_info` in src/eval/parallel_infernce_utils.py
* `search_result`       - `get_search_result` (same file)
* `rewritten_trace`     - `get_main_trace_after_sub_search` (same file)
* `is_calling`          - `is_calling_subsearch` in src/eval/eval_apr.py

The traces they parse are written by `_parallel_search` in src/data/search.py (the
training data). Differences, on purpose: the reference `eval`s the numbers and the
operation lists it reads from model text; here numbers are read with a regex and the
operation list with `ast.literal_eval` (literals only), and a trace it cannot parse
raises `SubSearchError` (the reference's exception ends the whole search there too).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from parareason.grading.countdown import search_result  # noqa: F401 - `get_search_result`, shared with grading

CALL_OPEN = "<Calling Sub Searches>"
CALL_CLOSE = "<End Calling Sub Searches>"
RESULTS_OPEN = "<Sub Searches>"
RESULTS_CLOSE = "<End Sub Searches>"


class SubSearchError(ValueError):
    """A calling block the reference could not parse either (unknown node, bad state)."""


@dataclass(frozen=True)
class Node:
    node: str  # "#1,1,2"
    target: int
    nums: tuple[int, ...]
    operations: tuple[str, ...]


def root_prefix(target: int, nums: list[int] | tuple[int, ...], sub_call_budget: int | None = None) -> str:
    """The prompt of the root search (`get_prefix`); `sub_call_budget` is `--use_subcall_cond`."""
    prefix = f"Moving to Node #0\nCurrent State: {target}:{list(nums)}, Operations: []"
    if sub_call_budget is not None:
        prefix = f"Sub Call Budget: {sub_call_budget} " + prefix
    return prefix


def is_calling(trace: str) -> bool:
    """The trace ends by calling sub searches: its last line holds the closing marker."""
    return CALL_CLOSE in trace.split("\n")[-1]


def _ints(text: str) -> tuple[int, ...]:
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise SubSearchError(f"not a number list: {text!r}")
    inner = body[1:-1].strip()
    if not inner:
        return ()
    parts = [p.strip() for p in inner.split(",")]
    if not all(re.fullmatch(r"-?\d+", p) for p in parts):
        raise SubSearchError(f"not a number list: {text!r}")
    return tuple(int(p) for p in parts)


def _ops(text: str) -> tuple[str, ...]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as e:
        raise SubSearchError(f"not an operation list: {text!r}") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SubSearchError(f"not an operation list: {text!r}")
    return tuple(value)


def _nodes(trace: str) -> dict[str, Node]:
    """Every node the trace names: "Moving to Node" + "Current State" pairs, then
    "Generated Node" lines (children of a known node), in the reference's order."""
    nodes: dict[str, Node] = {}
    lines = trace.split("\n")
    try:
        for line, nxt in zip(lines, lines[1:]):
            if "Moving to Node #" in line and "Current State:" in nxt:
                node_id = line.split("Moving to Node #")[1].strip()
                state = nxt.split("Current State:")[1].split("],")[0].strip()
                target, nums = state.split(":", 1)
                nodes[node_id] = Node(f"#{node_id}", int(target), _ints(nums.strip() + "]"),
                                      _ops(nxt.split("Operations:")[1]))
        for line in lines:
            if "Generated Node" not in line:
                continue
            node_id = line.split(":")[0].split("#")[1]
            if node_id in nodes:
                continue
            rest = line.split(":", 1)[1].strip()
            state, operation = rest.split("Operation:")[0].strip(), rest.split("Operation:")[1].strip()
            target, nums = state.split(":", 1)
            parent = nodes[",".join(node_id.split(",")[:-1])]
            nodes[node_id] = Node(f"#{node_id}", int(target), _ints(nums), parent.operations + (operation,))
    except (IndexError, KeyError, ValueError) as e:
        if isinstance(e, SubSearchError):
            raise
        raise SubSearchError(f"cannot read the search nodes: {type(e).__name__}: {e}") from e
    return nodes


def parse_sub_searches(trace: str, budget: int | None = None, avg_sub_call: bool = False) -> tuple[list[str], list[Node]]:
    """The children's prompts and nodes of a calling trace (`_get_subsearch_info`)."""
    if not is_calling(trace):
        raise SubSearchError("the trace does not end with a sub-search call")
    nodes = _nodes(trace)
    section = trace.split(CALL_OPEN + "\n")[-1].split("\n" + CALL_CLOSE)[0]
    called = []
    for line in section.split("\n"):
        if "<Start Sub Search" in line and "Moving to Node" in line:
            node_id = line.split("Moving to Node #")[1].strip()
            if node_id not in nodes:
                raise SubSearchError(f"sub search at unknown node #{node_id}")
            called.append(nodes[node_id])
    if avg_sub_call:
        if budget is None:
            raise SubSearchError("avg_sub_call needs a budget")
        if not called:
            raise SubSearchError("avg_sub_call with no sub search")
        budget = int((budget / len(called) - 1) // 512 + 1) * 512

    def prefix(n: Node) -> str:
        text = (f"Moving to Node {n.node}\nCurrent State: {n.target}:[{', '.join(map(str, n.nums))}], "
                f"Operations: {list(n.operations)}")
        return f"Token Budget: {budget} {text}" if budget is not None else text
    return [prefix(n) for n in called], called


def rewritten_trace(trace: str, nodes: list[Node], results: list[str | None]) -> str:
    """The calling block replaced by the sub searches' outcomes (`get_main_trace_after_sub_search`)."""
    if not is_calling(trace):
        raise SubSearchError("the trace does not end with a sub-search call")
    out = (CALL_OPEN + "\n").join(trace.split(CALL_OPEN + "\n")[:-1]) + RESULTS_OPEN + "\n"
    for i, (node, result) in enumerate(zip(nodes, results)):
        if result is None:
            out += f"<No Solution in Sub Search {i} at level 1 at Node {node.node}>\n"
        else:
            out += f"<Goal Reached in Sub Search {i} at level 1 at Node {node.node}>\n" + result + "\n"
    return out + RESULTS_CLOSE + "\n"
