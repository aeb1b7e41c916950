"""Are two answers the same? Plain numbers compare exactly; everything else goes
through math-verify (LaTeX, fractions, units, sets, intervals).

Never raises: any math-verify failure means "not equal".

Threads: math-verify's timeouts use `signal.alarm`, which only works in the main
thread (elsewhere `parse` raises ValueError). The server runs policies off the main
thread, so off the main thread we call math-verify with its timeout disabled and
bound the work ourselves instead: answers longer than `MAX_VERIFY_CHARS` are compared
as normalised strings only (short answers parse in milliseconds).
"""
from __future__ import annotations

import logging
import re
import threading
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from parareason.grading.extract import normalize_answer

MAX_VERIFY_CHARS = 400
MAIN_THREAD_TIMEOUT_S = 5

# math-verify warns once when timeouts are off and logs every parse failure; neither is news.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _timeout() -> int | None:
    return MAIN_THREAD_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def _plain_number(s: str) -> Decimal | None:
    """'1,000' / '-3.50' -> Decimal; anything else (incl. 'NaN', 'inf', '1e5') -> None."""
    s = s.replace(",", "")
    if not _PLAIN_NUMBER_RE.match(s):
        return None
    try:
        return Decimal(s)
    except (InvalidOperation, ValueError):
        return None


@lru_cache(maxsize=8192)
def _parsed(s: str) -> tuple:
    """math-verify's parse of one normalised answer (cached: votes compare each answer
    against many others)."""
    from math_verify import parse  # local: importing sympy costs ~1 s

    try:
        result = parse(f"${s}$", parsing_timeout=_timeout())
        if not result:
            result = parse(s, parsing_timeout=_timeout())
        return tuple(result)
    except Exception:  # noqa: BLE001 - math-verify may raise anything (sympy, timeout)
        return ()


def _verify(gold: str, pred: str) -> bool:
    from math_verify import verify

    g, p = _parsed(gold), _parsed(pred)
    if not g or not p:
        return False
    try:
        return bool(verify(list(g), list(p), timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001
        return False


@lru_cache(maxsize=65536)
def _equal_normalized(gold: str, pred: str) -> bool:
    if gold == pred:
        return True
    ng, np_ = _plain_number(gold), _plain_number(pred)
    if ng is not None and np_ is not None:  # fast path: "72" vs "72.0" vs "1,000"
        return ng == np_
    if len(gold) > MAX_VERIFY_CHARS or len(pred) > MAX_VERIFY_CHARS:
        return False
    return _verify(gold, pred)


def answers_equal(a: str | None, b: str | None) -> bool:
    """Symmetric equivalence of two extracted answers (None equals nothing)."""
    if a is None or b is None:
        return False
    try:
        na, nb = normalize_answer(a), normalize_answer(b)
        if not na or not nb:
            return False
        return _equal_normalized(na, nb) or _equal_normalized(nb, na)
    except Exception:  # noqa: BLE001 - grading never takes a request down
        return False


def is_correct(pred: str | None, reference: str | None) -> bool | None:
    """Grade `pred` against `reference`: None when there is no reference."""
    if reference is None:
        return None
    if pred is None:
        return False
    if reference.startswith("countdown:"):  # a Countdown row (grading/countdown.py)
        from parareason.grading.countdown import grade

        return grade(pred, reference)
    try:
        nref, npred = normalize_answer(reference), normalize_answer(pred)
        if not npred:
            return False
        return _equal_normalized(nref, npred)
    except Exception:  # noqa: BLE001
        return False
