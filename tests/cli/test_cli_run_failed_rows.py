"""`parareason run` exits non-zero when rows failed, keeping the other rows (issue 17 item 3)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from parareason.backends import scripted
from parareason.cli.main import main


def refuses_bad_prompts(**_opts):
    def script(ctx):
        if "too long" in ctx.text:  # what a backend does with a prompt past its context
            raise ValueError("context of 9033 tokens leaves no room under the model's 8192 max positions")
        return "\\boxed{4}"
    return scripted.ScriptedBackend(script)


def test_failed_rows_are_counted_and_the_exit_status_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(scripted, "scripted_from_environment", refuses_bad_prompts)
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "long", "prompt": "this one is too long"}) + "\n"
                 + json.dumps({"id": "ok", "prompt": "2+2?", "answer": "4"}) + "\n")
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(main, ["run", str(p), "--out", str(out), "--backend", "scripted", "-n", "2"])
    assert res.exit_code == 1, res.output
    assert "1 of 2 prompt(s) failed, e.g. long: every sample failed: backend error: ValueError: context of " \
           "9033 tokens" in res.output
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "8192 max positions" in rows["long"]["error"]
    assert rows["ok"]["error"] is None and rows["ok"]["correct"] is True  # the other row is kept
    summary = res.output.split("Summary")[1]
    assert "│      1 │" in summary  # the errors column


def test_a_run_without_failed_rows_exits_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(scripted, "scripted_from_environment", refuses_bad_prompts)
    p = tmp_path / "p.txt"
    p.write_text("2+2?\n")
    res = CliRunner().invoke(main, ["run", str(p), "--out", str(tmp_path / "r.jsonl"), "--backend", "scripted"])
    assert res.exit_code == 0, res.output
