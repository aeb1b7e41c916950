"""Labelled trace pairs for training and evaluating judges.

Input: a trace file written by `parareason record` (`parareason/backends/replay/tracefile.py`,
format "parareason-trace/1": every trace of every context of a question is used), or
the simple form, one JSON object per line and question:

    {"id": "gsm8k-train-0", "question": "...", "answer": "72",
     "traces": [{"text": "...", "answer": "72"}, ...]}

(`answer` of a trace may be missing or null: it is then extracted from its text; traces
with no answer at all are left out, since their label would be a guess. A recorded trace
cut by its token cap counts only an answer it stated, as at run time.)

A pair's label is 1 when both traces' final answers are math-verify equivalent.
DeepPrune judges *partial* traces online, so pairs are built from text prefixes
(`prefix_chars`, both traces cut to the same length, as two traces at the same
checkpoint are); 0 means the full text. The train/eval split is by question, so a
judge is never evaluated on a question whose traces it saw in training.
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from parareason.grading import extract_answer, final_answer, group_answers
from parareason.backends.replay.tracefile import TRACE_FORMAT, RecordedQuestion, read_bytes


@dataclass
class TraceText:
    text: str
    answer: str | None


@dataclass
class QuestionTraces:
    id: str
    question: str
    reference: str | None
    traces: list[TraceText] = field(default_factory=list)
    row: int | None = None  # dataset row, when the trace file recorded it


@dataclass
class Pair:
    question_id: str
    a: str
    b: str
    label: int  # 1 = same final answer
    prefix_chars: int  # 0 = full traces


def _from_record(obj: dict, line_no: int) -> QuestionTraces:
    if obj.get("format") == TRACE_FORMAT:
        rq = RecordedQuestion.from_dict(obj)
        return QuestionTraces(
            id=rq.id, question=rq.prompt, reference=rq.reference, row=rq.row,
            traces=[TraceText(t.text, final_answer(t.text, cut_by_cap=t.finish_reason == "length"))
                    for c in rq.contexts for t in c.traces])
    qid = str(obj.get("id", f"line-{line_no}"))
    traces = []
    for t in obj.get("traces", []):
        text = t.get("text") or ""
        ans = t.get("answer")
        if ans is None:
            ans = extract_answer(text)
        traces.append(TraceText(text=text, answer=None if ans is None else str(ans)))
    ref = obj.get("answer", obj.get("reference"))
    return QuestionTraces(id=qid, question=str(obj.get("question", obj.get("prompt", ""))),
                          reference=None if ref is None else str(ref), traces=traces)


def load_traces(path: str | Path) -> list[QuestionTraces]:
    """Read a trace file (format in the module docstring; `.xz` / `.gz` compressed or not).

    Only an unterminated last line (an interrupted recording) is skipped; a malformed
    complete line is an error naming file and line, never silently dropped data."""
    text = read_bytes(Path(path)).decode("utf-8")  # .xz / .gz as they are committed
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    out: list[QuestionTraces] = []
    seen: set[str] = set()
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None
        q = _from_record(obj, n)
        if q.id not in seen:  # a resumed recording may repeat a question
            seen.add(q.id)
            if q.row is None:
                q.row = len(out)  # no row recorded: file order is dataset order
            out.append(q)
    return sorted(out, key=lambda q: q.row)


def answer_classes(q: QuestionTraces) -> list[int | None]:
    """Equivalence-class index of each trace's answer (None: no answer)."""
    groups = group_answers([t.answer for t in q.traces])
    cls: list[int | None] = [None] * len(q.traces)
    for gi, g in enumerate(groups):
        for i in g.members:
            cls[i] = gi
    return cls


def build_pairs(questions: Iterable[QuestionTraces], prefix_chars: Sequence[int] = (0,),
                max_pairs_per_question: int | None = None, seed: int = 0) -> list[Pair]:
    """All unordered pairs of answered traces of each question, at each prefix length."""
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for q in questions:
        cls = answer_classes(q)
        idx = [i for i, c in enumerate(cls) if c is not None]
        combos = list(itertools.combinations(idx, 2))
        if max_pairs_per_question is not None and len(combos) > max_pairs_per_question:
            combos = rng.sample(combos, max_pairs_per_question)
        for i, j in combos:
            for n in prefix_chars:
                a, b = q.traces[i].text, q.traces[j].text
                if n:
                    a, b = a[:n], b[:n]
                pairs.append(Pair(q.id, a, b, int(cls[i] == cls[j]), n))
    return pairs


def split_by_question(questions: Sequence[QuestionTraces], eval_fraction: float,
                      seed: int = 0) -> tuple[list[QuestionTraces], list[QuestionTraces]]:
    """(train, eval), disjoint by question id, deterministic for a seed."""
    ids = sorted({q.id for q in questions})
    random.Random(seed).shuffle(ids)
    n_eval = max(1, round(len(ids) * eval_fraction)) if eval_fraction > 0 and len(ids) > 1 else 0
    eval_ids = set(ids[:n_eval])
    return ([q for q in questions if q.id not in eval_ids], [q for q in questions if q.id in eval_ids])


def parse_prefixes(spec: str) -> tuple[int, ...]:
    """'256,512,0' -> (256, 512, 0); 'full' stands for 0."""
    out = []
    for part in spec.split(","):
        part = part.strip().lower()
        if part:
            out.append(0 if part == "full" else int(part))
    return tuple(out) or (0,)
