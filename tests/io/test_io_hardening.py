"""Bad input and bad results cannot take a run down (issue 17 items 2, 5, 6, 7)."""
from __future__ import annotations

import json
import math
import os

import pytest

from parareason.io.prompts import PromptInputError, load_prompts, normalize_items
from parareason.io.results import ResultFileError, ResultWriter, check_writable, scan_results
from parareason.runtime.result import Result


def result(i: str, prompt: str | None = None, **kw) -> Result:
    return Result(id=i, prompt=prompt or f"q{i}", answer="1", correct=None, policy="sc", protocol="plain", **kw)


@pytest.mark.parametrize("row,where", [
    ('{"prompt": "bad \\ud800 x"}', "'prompt' holds a lone surrogate (U+D800 at character 5)"),
    ('{"prompt": "ok", "id": "\\udc00"}', "'id' holds a lone surrogate"),
    ('{"prompt": "ok", "answer": "\\ud83d"}', "'answer' holds a lone surrogate"),
    ('{"prompt": "ok", "policy": "sc\\ud800"}', "'policy' holds a lone surrogate"),
    ('{"prompt": "ok", "solution": {"steps": ["x", "\\ud800"]}}', "'solution.steps[1]' holds a lone surrogate"),
    ('{"prompt": "ok", "\\ud800": 1}', "a key of the row holds a lone surrogate"),
])
def test_lone_surrogates_are_refused_with_file_line(tmp_path, row, where):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "fine \\ud83d\\ude00"}\n' + row + "\n")  # a proper pair is fine
    with pytest.raises(PromptInputError) as e:
        load_prompts(p)
    assert str(e.value).startswith(f"{p}:2: ") and where in str(e.value)


def test_lone_surrogates_in_python_prompts_are_refused():
    with pytest.raises(PromptInputError, match="prompts:2: 'prompt' holds a lone surrogate"):
        normalize_items(["fine", "bad \ud800"])
    with pytest.raises(PromptInputError, match="prompts:1: 'id' holds a lone surrogate"):
        normalize_items([{"prompt": "x", "id": "a\udfff"}])


def test_a_result_that_cannot_be_written_becomes_an_error_row_and_the_run_goes_on(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {"model": "m"}) as w:
        w.append(result("a"))
        w.append(result("b\ud800", prompt="surrogate \ud800 here"))  # only the Python API can get here
        w.append(result("c", details={"bad": {("tuple", "key"): 1}}))  # JSON cannot hold the key
        w.append(result("d"))
    data = out.read_bytes()
    data.decode("utf-8")  # the whole file is valid UTF-8
    rows = [json.loads(x) for x in data.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b\ud800", "c", "d"]  # the id survives exactly
    assert rows[0]["error"] is None and rows[3]["error"] is None and rows[3]["answer"] == "1"
    assert "result could not be written: UnicodeEncodeError" in rows[1]["error"]
    assert rows[1]["prompt"] == "surrogate \ud800 here" and rows[1]["policy"] == "sc"
    assert "result could not be written: TypeError" in rows[2]["error"]
    # resume sees every row as done, so it can always finish
    with ResultWriter(out, {"model": "m"}, resume=True) as w:
        assert w.done_ids == {"a", "b\ud800", "c", "d"}


def test_non_finite_numbers_are_written_as_null(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {"model": "m"}) as w:
        w.append(result("a", details={"score": math.nan, "xs": [1.0, math.inf]}))
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    row = json.loads(text)
    assert row["details"] == {"score": None, "xs": [1.0, None]} and row["error"] is None


def test_settings_with_nan_are_refused_and_never_written(tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(ResultFileError, match="NaN or infinite"):
        ResultWriter(out, {"temperature": math.nan}).open()
    sidecar = tmp_path / "r.jsonl.config.json"
    assert not sidecar.exists() or "NaN" not in sidecar.read_text()


def test_a_complete_last_line_missing_its_newline_is_kept(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {"model": "m"}) as w:
        w.append(result("a"))
        w.append(result("b"))
    out.write_bytes(out.read_bytes().rstrip(b"\n"))  # another tool dropped the final newline
    assert set(scan_results(out).rows) == {"a", "b"}
    with ResultWriter(out, {"model": "m"}, resume=True) as w:
        assert w.done_ids == {"a", "b"} and w.existing.added_newline and not w.existing.repaired_bytes
        w.append(result("c"))
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b", "c"]


def test_unusable_output_paths_are_refused_and_nothing_is_created(tmp_path, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for bad, fragment in ((a_file / "out.jsonl", "is a file, not a directory"),
                          (a_file / "sub" / "out.jsonl", "is a file, not a directory"),
                          (tmp_path, "is a directory")):
        with pytest.raises(ResultFileError, match=fragment):
            ResultWriter(bad, {"model": "m"}).open()
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root ignores permission bits, so let the OS "refuse" this folder
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    with pytest.raises(ResultFileError, match="permission denied"):
        check_writable(locked / "new" / "out.jsonl")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file.txt", "locked"]
    assert not any(locked.iterdir())
