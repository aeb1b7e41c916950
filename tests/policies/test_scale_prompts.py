"""SCALE's parsers: the reference's JSON outline, the version choice, the difficulty score."""
from __future__ import annotations

from parareason.policies.scale_prompts import parse_outline, parse_score, parse_version, process_text


def test_parse_outline_reads_the_reference_json_in_key_order():
    text = 'Sure!\n```json\n{"step2": "Add them", "step1": "Find \\\\frac{1}{2} of 48", "step10": "Check"}\n```'
    assert parse_outline(text, 6) == ["Find \\frac{1}{2} of 48", "Add them", "Check"]
    assert parse_outline('{"step1": "Find \\frac{a}{b}"}', 6) == ["Find \\frac{a}{b}"]  # single backslash fixed
    assert parse_outline('{"first": "x"}', 6) == []  # keys must be stepN
    assert parse_outline("1. Find May\n2. Add", 6) == ["Find May", "Add"]  # numbered list accepted
    assert parse_outline('{"step1": "a", "step2": "b", "step3": "c"}', 2) == ["a", "b"]


def test_parse_version_and_score():
    assert parse_version("version2", 3) == 1
    assert parse_version("I choose Version 3.", 3) == 2
    assert parse_version("version9", 3) is None and parse_version("the second", 3) is None
    assert parse_score("0.7") == 0.7 and parse_score(" 1") == 1.0 and parse_score("Score: 0.25.") == 0.25
    assert parse_score("1.5") is None and parse_score("hard") is None


def test_process_text_carries_answers_only_when_solving():
    assert process_text(["Find a", "Find b"]) == "Find a Find b"
    assert process_text(["Find a"], ["3"]) == "Find a\nstep answer:3"
    assert process_text(["Find a"], [None]) == "Find a\nstep answer:unknown"
