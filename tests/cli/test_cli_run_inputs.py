"""`parareason run` rejects malformed input before any model work, as `file:line: message`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from parareason.cli.main import main

BAD_CASES = {
    "bad_json": (['{"prompt": "ok"}', '{"prompt": "x"'], ":2: invalid JSON"),
    "missing_prompt": (['{"prompt": "ok"}', '{"id": "b", "answer": "3"}'], ":2: missing 'prompt'"),
    "duplicate_id": (['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], ":2: duplicate id 'a'"),
    "wrong_type": (['{"prompt": ["x"]}'], ":1: 'prompt' must be a string"),
    "bad_override": (['{"prompt": "x", "temperature": "hot"}'], ":1: 'temperature' must be a number"),
}


def invoke(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_rows_fail_with_file_line_before_loading(tmp_path, case):
    lines, fragment = BAD_CASES[case]
    p = tmp_path / "prompts.jsonl"
    p.write_text("\n".join(lines) + "\n")
    # The real embedded backend: a failure after loading would take far longer and print "loading".
    res = invoke(["run", str(p), "--out", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 2, res.output
    assert f"{p}{fragment}" in res.output
    assert "Traceback" not in res.output and "loading" not in res.output
    assert not (tmp_path / "out.jsonl").exists()


def test_empty_missing_and_unreadable_files(tmp_path, monkeypatch):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    res = invoke(["run", str(empty)])
    assert res.exit_code == 2 and f"{empty}: empty file" in res.output
    res = invoke(["run", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 2 and "no such file" in res.output
    locked = tmp_path / "locked.txt"
    locked.write_text("a prompt\n")

    def denied(self):  # root ignores chmod 0, so simulate the OS refusing the read
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(locked), "read_bytes", denied)
    res = invoke(["run", str(locked)])
    assert res.exit_code == 2 and f"{locked}: cannot read: Permission denied" in res.output


def test_bad_policy_protocol_and_options_fail_before_loading(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("What is 2+2?\n")
    res = invoke(["run", str(p), "--policy", "nonsense"])
    assert res.exit_code == 2 and "unknown policy 'nonsense'" in res.output
    res = invoke(["run", str(p), "--policy", "ffs", "--policy-arg", "wibble=3"])
    assert res.exit_code == 2 and "wibble" in res.output
    res = invoke(["run", str(p), "--policy-arg", "novalue"])
    assert res.exit_code == 2 and "expected key=value" in res.output
    res = invoke(["run", str(p), "--protocol", "telepathy"])
    assert res.exit_code == 2
    res = invoke(["run", str(p), "--backend", "sglang"])
    assert res.exit_code == 2 and "needs at least one --url" in res.output
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "x", "protocol": "morse"}) + "\n")
    res = invoke(["run", str(rows)])
    assert res.exit_code == 2 and "unknown protocol 'morse'" in res.output


def test_config_file_errors_and_unknown_keys(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("What is 2+2?\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('temprature = 0.5\n')
    res = invoke(["run", str(p), "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown key 'temprature'" in res.output
    cfg.write_text('temperature = = 0.5\n')
    res = invoke(["run", str(p), "--config", str(cfg)])
    assert res.exit_code == 2 and "not valid TOML" in res.output
    cfg.write_text('policy = "nonsense"\n')
    res = invoke(["run", str(p), "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown policy 'nonsense'" in res.output


def test_help_documents_public_backends_only():
    res = invoke(["run", "--help"])
    assert res.exit_code == 0
    assert "[embedded|sglang|vllm]" in res.output and "scripted" not in res.output and "replay" not in res.output
    for opt in ("--model", "--url", "--protocol", "--policy-arg", "--budget", "--deadline", "--resume",
                "--trace", "--config", "--quiet", "--top-p", "--seed"):
        assert opt in res.output
