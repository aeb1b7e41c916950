"""Countdown grading: does a written solution reach the target with the given numbers?

A Countdown problem (APR's benchmark task) is a target and a few numbers; a solution
combines all the numbers with + - * / into the target. Its reference answer is written
`countdown:TARGET:[n1, n2, ...]` (`reference_string`), which `grading.is_correct` detects.

Two kinds of answers are checked, both by parsing (model text is never evaluated):

* an APR solution path, or a whole search trace (then its final path, `search_result`) (`Exploring Operation: 79-27=52, Resulting
  Numbers: [5, 50, 52]` ... `62,62 equal: Goal Reached`): checked line by line as
  `check_solution` in github.com/Parallel-Reasoning/APR
  @ 557792831087b701e0d41912eaf785c8d73e6f69 `src/eval/parallel_infernce_utils.py`
  does (each operation uses numbers still available, its arithmetic is right, the stated
  resulting numbers match, and the goal line has the target as the only number left);
  division must be exact, as the reference's integer comparison requires;
* an arithmetic expression (`(79 - 27) + 5 + 5`, optionally `= 62`): parsed with a small
  recursive-descent parser over exact fractions; it must use each given number exactly
  once, divide exactly, and equal the target (intermediate values may be negative).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_REF_RE = re.compile(r"^\s*countdown:(\d+):\[([\d,\s]*)\]\s*$")
_STATE_RE = re.compile(r"Current State:\s*(\d+):\[([\d,\s]*)\]")
_WORDS_RE = re.compile(r"numbers\s*\[([\d,\s]*)\][^\n]*?equals?\s+(\d+)", re.IGNORECASE)
_OP_RE = re.compile(r"Exploring Operation:\s*(\d+)([+\-*/])(\d+)=(\d+),\s*Resulting Numbers:\s*\[(.*?)\]")


@dataclass(frozen=True)
class CountdownProblem:
    target: int
    nums: tuple[int, ...]


def _int_list(body: str) -> tuple[int, ...]:
    return tuple(int(x) for x in body.split(",") if x.strip())


def reference_string(problem: CountdownProblem) -> str:
    return f"countdown:{problem.target}:{list(problem.nums)}"


def parse_reference(reference: str | None) -> CountdownProblem | None:
    """The problem of a `countdown:T:[...]` reference, else None (not a Countdown row)."""
    m = _REF_RE.match(reference or "")
    return CountdownProblem(int(m.group(1)), _int_list(m.group(2))) if m else None


def find_problem(text: str) -> CountdownProblem | None:
    """A Countdown problem stated in a prompt: an APR state line or our instruct wording."""
    m = _STATE_RE.search(text)
    if m:
        return CountdownProblem(int(m.group(1)), _int_list(m.group(2)))
    m = _WORDS_RE.search(text)
    if m:
        return CountdownProblem(int(m.group(2)), _int_list(m.group(1)))
    return None


def check_trace(problem: CountdownProblem, solution: str) -> bool:
    """APR's `check_solution`: replay the operations of a search trace / solution path."""
    current = list(problem.nums)
    for line in solution.splitlines():
        line = line.strip()
        m = _OP_RE.search(line)
        if m:
            x, op, y, z = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            try:
                stated = [int(n.strip()) for n in m.group(5).split(",") if n.strip()]
            except ValueError:
                return False
            left = list(current)
            try:
                left.remove(x)
                left.remove(y)
            except ValueError:
                return False
            if op == "+":
                ok = x + y == z
            elif op == "-":
                ok = x - y == z
            elif op == "*":
                ok = x * y == z
            else:
                ok = y != 0 and x == y * z
            if not ok or sorted(left + [z]) != sorted(stated):
                return False
            current = stated
        if "Goal Reached" in line:
            return current == [problem.target]
    return False


class _Parser:
    """expr := term (('+'|'-') term)*; term := atom (('*'|'/') atom)*; atom := INT | '(' expr ')'."""

    def __init__(self, text: str):
        text = text.replace("×", "*").replace("÷", "/").replace("\\times", "*").replace("\\div", "/")
        self.toks = re.findall(r"\d+|[+\-*/()]|\S", text)
        self.i = 0
        self.used: list[int] = []

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ValueError("unexpected end")
        self.i += 1
        return tok

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.atom()
        while self.peek() in ("*", "/"):
            if self.take() == "*":
                value = value * self.atom()
            else:
                d = self.atom()
                if d == 0 or (value / d).denominator != 1:
                    raise ValueError("inexact division")
                value = value / d
        return value

    def atom(self) -> Fraction:
        tok = self.take()
        if tok == "(":
            value = self.expr()
            if self.take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        if tok.isdigit():
            self.used.append(int(tok))
            return Fraction(int(tok))
        raise ValueError(f"unexpected {tok!r}")


def check_expression(problem: CountdownProblem, expression: str) -> bool:
    """An arithmetic expression over the given numbers (each once) that equals the target."""
    lhs = expression.split("=")[0]
    parser = _Parser(lhs)
    try:
        value = parser.expr()
    except ValueError:
        return False
    if parser.peek() is not None:
        return False
    return value == problem.target and sorted(parser.used) == sorted(problem.nums)


def search_result(trace: str) -> str | None:
    """The solution path at the end of a search that reached the goal, else None: from the
    second-to-last "Goal Reached" on (`get_search_result` in the APR file named above)."""
    if trace.count("Goal Reached") < 2:
        return None
    at = [m.start() for m in re.finditer("Goal Reached", trace)][-2]
    return trace[at:].strip()[13:]


def grade(answer: str | None, reference: str) -> bool:
    """Countdown correctness of `answer` against a `countdown:...` reference."""
    problem = parse_reference(reference)
    if problem is None:
        raise ValueError(f"not a Countdown reference: {reference!r}")
    if not answer:
        return False
    if "Exploring Operation" in answer or "Goal Reached" in answer:
        # a whole search trace is judged by its final solution path, as APR's eval does
        return check_trace(problem, search_result(answer) or answer)
    return check_expression(problem, answer)
