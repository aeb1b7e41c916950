"""Result writer: append/fsync, partial-line repair, resume, config fingerprint."""
from __future__ import annotations

import json

import pytest

from parareason.io.results import FINGERPRINT_KEY, ResultFileError, ResultWriter, config_fingerprint
from parareason.runtime.result import Result


def result(i: str) -> Result:
    return Result(id=i, prompt=f"q{i}", answer="1", correct=None, policy="sc", protocol="plain")


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_fingerprint_ignores_key_order():
    assert config_fingerprint({"a": 1, "b": [1, 2]}) == config_fingerprint({"b": [1, 2], "a": 1})
    assert config_fingerprint({"a": 1}) != config_fingerprint({"a": 2})


def test_append_then_resume_skips_done_and_repairs_partial_line(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {"model": "m"}) as w:
        w.append(result("a"))
        w.append(result("b"))
    with open(out, "ab") as f:  # a kill in the middle of writing "c"
        f.write(b'{"id": "c", "prompt": "q')
    with ResultWriter(out, {"model": "m"}, resume=True) as w:
        assert w.done_ids == {"a", "b"}
        assert w.existing.repaired_bytes > 0
        w.append(result("c"))
    rows = lines(out)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert all(r[FINGERPRINT_KEY] == config_fingerprint({"model": "m"}) for r in rows)
    assert Result.from_dict(rows[0]) == result("a")


def test_existing_file_without_resume_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {}) as w:
        w.append(result("a"))
    with pytest.raises(ResultFileError, match="already exists; pass --resume"):
        ResultWriter(out, {}).open()


def test_other_config_is_refused_unless_forced_and_file_left_untouched(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {"temperature": 0.7}) as w:
        w.append(result("a"))
    with open(out, "ab") as f:
        f.write(b'{"id": "b"')
    before = out.read_bytes()
    with pytest.raises(ResultFileError, match=r"different settings.*temperature 0.7 -> 1.0"):
        ResultWriter(out, {"temperature": 1.0}, resume=True).open()
    assert out.read_bytes() == before
    with ResultWriter(out, {"temperature": 1.0}, resume=True, force=True) as w:
        assert w.done_ids == {"a"}


def test_corrupt_complete_line_is_an_error(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(ResultFileError, match=r"r.jsonl:2: corrupt result line"):
        ResultWriter(out, {}, resume=True).open()


def test_second_writer_on_same_file_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {}):
        with pytest.raises(ResultFileError, match="another process"):
            ResultWriter(out, {}, resume=True).open()


def test_resume_runs_failed_prompts_again_and_keeps_one_row_per_id(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out, {"model": "m"}) as w:
        w.append(result("a"))
        failed = result("b")
        failed.error = "every sample failed: vLLM request failed after 4 attempt(s): connect: refused"
        w.append(failed)
        w.append(result("c"))
    with ResultWriter(out, {"model": "m"}, resume=True) as w:
        assert w.done_ids == {"a", "c"} and w.existing.retried == ["b"]
        assert [r["id"] for r in lines(out)] == ["a", "c"]  # the error row is gone before the rerun
        w.append(result("b"))  # the server is back
    rows = lines(out)
    assert sorted(r["id"] for r in rows) == ["a", "b", "c"] and all(r["error"] is None for r in rows)
    assert not list(tmp_path.glob(".r.jsonl.tmp-*"))
    with ResultWriter(out, {"model": "m"}, resume=True) as w:
        assert w.done_ids == {"a", "b", "c"} and not w.existing.retried
