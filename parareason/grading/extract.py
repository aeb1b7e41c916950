"""Pull the final answer out of a model's (or a reference solution's) text.

Order of trust: the last `\\boxed{...}` (what math models are told to write), then a
GSM8K `#### n` line, then a phrase such as "the answer is ..." / "final answer: ...",
then the last number in the text. The result is normalised (see `normalize_answer`)
so that votes over raw strings already merge trivially equal answers.
"""
from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_PHRASE_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*([^\n]+)", re.IGNORECASE)
NUMBER_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_TEXT_WRAP_RE = re.compile(r"^\\(?:text|textbf|mathrm|mbox|mathbf)\{(.*)\}$", re.S)


def _balanced_group(text: str, open_at: int) -> str | None:
    """Content of the `{...}` group opening at `text[open_at]`, nested braces allowed."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return None  # unclosed: a truncated sample has no boxed answer


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`)."""
    best_at, best = -1, None
    for cmd in _BOX_COMMANDS:
        start = text.rfind(cmd)
        while start != -1:
            rest_at = start + len(cmd)
            if rest_at < len(text) and text[rest_at] == "{":
                content = _balanced_group(text, rest_at)
            else:  # "\boxed 5" form: the next whitespace-free token
                m = re.match(r"\s+([^\s$]+)", text[rest_at:])
                content = m.group(1) if m else None
            if content is not None:
                if start > best_at:
                    best_at, best = start, content
                break
            start = text.rfind(cmd, 0, start)  # incomplete box: try an earlier one
    return best


_NUMBER_THEN_WORDS_RE = re.compile(
    r"^(?:\\?\$)?\s*(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)\s+[A-Za-z]")


def _strip_phrase_tail(s: str) -> str:
    """'42. So Natalia sold...' -> '42': cut at the first sentence end outside math;
    '72 clips' -> '72': a number followed by words keeps only the number."""
    m = _NUMBER_THEN_WORDS_RE.match(s)
    if m:
        return m.group(1)
    if s.count("$") >= 2:  # "$\frac{1}{2}$." keep the math, drop prose after it
        first = s.index("$")
        second = s.index("$", first + 1)
        return s[first:second + 1]
    m = re.search(r"\.(?:\s|$)", s)
    return s[:m.start()] if m else s


def normalize_answer(ans: str) -> str:
    """Cosmetic clean-up that never changes the value: `$`, trailing period, text
    wrappers, thousands separators, leading 'x =' is kept (math-verify handles it)."""
    s = ans.strip()
    s = s.replace("\\$", "").replace("$", "").strip()
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = s.rstrip(".").strip()
    m = _TEXT_WRAP_RE.match(s)
    while m and "}" not in m.group(1):  # unwrap a single \text{...}, not \text{a}+\text{b}
        s = m.group(1).strip()
        m = _TEXT_WRAP_RE.match(s)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    return s


def explicit_answer(text: str | None) -> str | None:
    """The answer the text states as final (\\boxed{}, '#### n', 'the answer is ...'),
    normalised; None when it only contains numbers. A trace cut off by its token cap
    is judged by this alone: its last number is usually an intermediate result."""
    if not text:
        return None
    found = last_boxed(text)
    if found is None:
        hashes = _HASH_RE.findall(text)
        if hashes:
            found = hashes[-1]
    if found is None:
        phrases = _PHRASE_RE.findall(text)
        if phrases:
            found = _strip_phrase_tail(phrases[-1])
    return (normalize_answer(found) or None) if found is not None else None


def extract_answer(text: str | None) -> str | None:
    """The final answer in `text`, normalised, or None when there is none: an explicit
    one (see explicit_answer), else the last number."""
    found = explicit_answer(text)
    if found is not None or not text:
        return found
    numbers = NUMBER_RE.findall(text)
    return (normalize_answer(numbers[-1]) or None) if numbers else None


def final_answer(text: str | None, cut_by_cap: bool = False) -> str | None:
    """The answer an ended trace gives: `extract_answer`, or only a stated one
    (`explicit_answer`) when the trace was cut by its token cap."""
    return explicit_answer(text) if cut_by_cap else extract_answer(text)
