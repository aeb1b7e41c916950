"""Judges: will two (partial) reasoning traces end with the same final answer?

`Judge.score(a, b) -> probability`; see base.py. Implementations import torch or a
model only when built, so importing this package stays cheap.
"""
from parareason.judge.base import Judge
from parareason.judge.factory import KINDS, make_judge

__all__ = ["Judge", "KINDS", "make_judge"]
