"""Regression: unicode line separators inside JSON strings are data, not line breaks."""
import json

from parareason.io.prompts import load_prompts


def test_unicode_line_separator_inside_json_string(tmp_path):
    rows = [{"id": "a", "question": "one\u2028two\x85three", "answer": "1"}, {"id": "b", "question": "q", "answer": "2"}]
    p = tmp_path / "p.jsonl"
    p.write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    got = load_prompts(p)
    assert [r.id for r in got] == ["a", "b"]
    assert "\u2028" in got[0].prompt
