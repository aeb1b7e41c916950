"""Prompt file parsing and validation: every bad case is reported as file:line."""
from __future__ import annotations

import json

import pytest

from parareason.io.prompts import PromptInputError, load_prompts, normalize_items


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_jsonl_rows_with_overrides_and_metadata(tmp_path):
    p = write(tmp_path, "p.jsonl", "\n".join([
        json.dumps({"id": "a", "prompt": "1+1?", "answer": 2, "n": 4, "temperature": 0.5, "policy": "sc"}),
        "",
        json.dumps({"question": "2+2?", "solution": "4", "max_new_tokens": 64}),
    ]) + "\n")
    rows = load_prompts(p)
    assert [r.id for r in rows] == ["a", "line-3"]
    assert rows[0].answer == "2" and rows[0].overrides == {"n": 4, "temperature": 0.5, "policy": "sc"}
    assert rows[1].prompt == "2+2?" and rows[1].meta == {"solution": "4"}
    assert rows[1].overrides == {"max_new_tokens": 64} and rows[1].line == 3


def test_plain_text_one_prompt_per_line(tmp_path):
    p = write(tmp_path, "p.txt", "What is 3*4?\n\n  What is 10-7?  \n")
    rows = load_prompts(p)
    assert [(r.id, r.prompt) for r in rows] == [("line-1", "What is 3*4?"), ("line-3", "What is 10-7?")]
    assert [r.prompt for r in load_prompts(write(tmp_path, "s.txt", "{x} + 1 = 3, find x\n"))] == ["{x} + 1 = 3, find x"]
    assert load_prompts(write(tmp_path, "noext", '{"prompt": "p"}\n'))[0].prompt == "p"


@pytest.mark.parametrize("lines, line, fragment", [
    (['{"prompt": "ok"}', '{"prompt": "x", '], 2, "invalid JSON"),
    (['{"id": "a", "answer": "1"}'], 1, "missing 'prompt'"),
    (['{"id": "a", "prompt": "x"}', '{"prompt": "y"}', '{"id": "a", "prompt": "z"}'], 3, "duplicate id 'a'"),
    (['{"prompt": 5}'], 1, "'prompt' must be a string"),
    (['{"prompt": "  "}'], 1, "'prompt' is empty"),
    (['{"prompt": "x", "n": "four"}'], 1, "'n' must be an integer >= 1"),
    (['{"prompt": "x", "n": 0}'], 1, "'n' must be an integer >= 1"),
    (['{"prompt": "x", "temperature": -1}'], 1, "'temperature' must be a number >= 0"),
    (['{"prompt": "x", "max_new_tokens": true}'], 1, "'max_new_tokens' must be"),
    (['{"prompt": "x", "id": [1]}'], 1, "'id' must be a string or integer"),
    (['{"prompt": "x", "answer": {"v": 1}}'], 1, "'answer' must be a string or number"),
    (['["not", "an", "object"]'], 1, "expected a JSON object"),
    (['{"prompt": "x", "question": "y"}'], 1, "both 'prompt' and 'question'"),
])
def test_bad_jsonl_reports_file_and_line(tmp_path, lines, line, fragment):
    p = write(tmp_path, "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(PromptInputError) as e:
        load_prompts(p)
    assert e.value.line == line
    assert str(e.value).startswith(f"{p}:{line}: ")
    assert fragment in str(e.value)


def test_empty_missing_directory_and_binary_files(tmp_path):
    with pytest.raises(PromptInputError, match="empty file"):
        load_prompts(write(tmp_path, "e.jsonl", "\n  \n"))
    with pytest.raises(PromptInputError, match="no such file"):
        load_prompts(tmp_path / "missing.jsonl")
    with pytest.raises(PromptInputError, match="is a directory"):
        load_prompts(tmp_path)
    b = tmp_path / "b.txt"
    b.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(PromptInputError, match=r":2: not valid UTF-8"):
        load_prompts(b)


def test_normalize_items_accepts_strings_and_dicts():
    rows = normalize_items(["What is 1+1?", {"id": 7, "question": "2+2?", "answer": "4"}])
    assert [(r.id, r.prompt, r.answer) for r in rows] == [("prompt-1", "What is 1+1?", None), ("7", "2+2?", "4")]
    with pytest.raises(PromptInputError, match="prompts:2: duplicate id"):
        normalize_items([{"id": "x", "prompt": "a"}, {"id": "x", "prompt": "b"}])
    with pytest.raises(PromptInputError, match="no prompts"):
        normalize_items([])
