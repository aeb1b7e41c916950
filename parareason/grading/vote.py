"""Voting over answers that may be written differently but mean the same thing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from parareason.grading.equivalence import answers_equal

SameFn = Callable[[str | None, str | None], bool]


@dataclass
class AnswerGroup:
    """One equivalence class of answers: its first-seen form and its members' indices."""

    answer: str
    members: list[int] = field(default_factory=list)
    weight: float = 0.0

    @property
    def count(self) -> int:
        return len(self.members)


def group_answers(answers: Sequence[str | None], weights: Sequence[float] | None = None,
                  same: SameFn = answers_equal) -> list[AnswerGroup]:
    """Cluster answers into equivalence classes (None answers are left out), in order
    of first appearance. `weights` (default 1 each) are summed per class."""
    groups: list[AnswerGroup] = []
    for i, ans in enumerate(answers):
        if ans is None:
            continue
        w = 1.0 if weights is None else float(weights[i])
        for g in groups:
            if same(g.answer, ans):
                g.members.append(i)
                g.weight += w
                break
        else:
            groups.append(AnswerGroup(answer=ans, members=[i], weight=w))
    return groups


def majority_vote(answers: Sequence[str | None], weights: Sequence[float] | None = None,
                  same: SameFn = answers_equal,
                  tie_break: Sequence[float] | None = None) -> tuple[str | None, list[AnswerGroup]]:
    """The heaviest equivalence class's answer. Ties go to the class whose members have
    the higher mean `tie_break` score (e.g. mean token logprob), then to the first seen."""
    groups = group_answers(answers, weights, same)
    if not groups:
        return None, groups

    def key(g: AnswerGroup) -> tuple[float, float]:
        tb = (sum(tie_break[i] for i in g.members) / g.count) if tie_break is not None else 0.0
        return (g.weight, tb)

    best = max(groups, key=key)  # max keeps the first of equal keys
    return best.answer, groups
