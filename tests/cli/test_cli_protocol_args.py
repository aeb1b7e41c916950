"""`--protocol-arg KEY=VALUE` on the command line of `run` and `serve` (scripted backend):
values parse as JSON, reach the protocol, enter the run's settings, and a bad one is a
usage error before anything loads."""
from __future__ import annotations

import json

from click.testing import CliRunner

from parareason.cli.main import main
from tests.support.server_harness import client, serve_process

REPLY = "It is 7. \\boxed{7}"
TRAINED_2 = ["--protocol", "parathinker", "--protocol-arg", "dialect=trained", "--protocol-arg", "n_paths=2"]


def run(tmp_path, monkeypatch, *args, name="r"):
    monkeypatch.setenv("PARAREASON_SCRIPTED_DEFAULT", REPLY)
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "prompt": "What is 3 + 4?", "answer": "7"}) + "\n")
    out = tmp_path / f"{name}.jsonl"
    res = CliRunner().invoke(main, ["run", str(p), "--backend", "scripted", "-n", "1", "-q", "--out", str(out),
                                    *args], catch_exceptions=False)
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return res, rows, out


def test_run_protocol_args_reach_the_protocol_and_the_settings(tmp_path, monkeypatch):
    res, [row], out = run(tmp_path, monkeypatch, *TRAINED_2, "--protocol-arg", "finish_ratio=1.0")
    assert res.exit_code == 0, res.output
    assert row["protocol"] == "parathinker" and row["answer"] == "7" and row["correct"] is True
    assert len(row["threads"]) == 3  # n_paths=2 (a JSON integer), then the summary
    assert row["details"]["approximation"] == "flattened paths"  # the trained dialect on a non-native backend
    settings = json.loads(out.with_name(out.name + ".config.json").read_text())
    assert {"dialect": "trained", "n_paths": 2, "finish_ratio": 1.0} in _values(settings)
    # the default dialect with another option: prompted markup, three paths
    res, [row], _ = run(tmp_path, monkeypatch, "--protocol", "parathinker", "--protocol-arg", "n_paths=3",
                        name="prompted")
    assert res.exit_code == 0, res.output
    assert len(row["threads"]) == 4 and "approximation" not in row["details"]


def test_resume_refuses_other_protocol_args(tmp_path, monkeypatch):
    res, _, out = run(tmp_path, monkeypatch, *TRAINED_2)
    assert res.exit_code == 0, res.output
    res, _, _ = run(tmp_path, monkeypatch, *TRAINED_2[:-1], "n_paths=3", "--resume")
    assert res.exit_code != 0 and "resume" in res.output.lower()
    res, _, _ = run(tmp_path, monkeypatch, *TRAINED_2, "--resume")
    assert res.exit_code == 0 and "(1 of 1 already done)" in res.output


def test_run_bad_protocol_args_are_usage_errors(tmp_path, monkeypatch):
    for args, says in ((["--protocol-arg", "n_paths"], "expected key=value"),
                       (["--protocol-arg", "finish_ratio=0.5"], "finish_ratio"),  # a trained-only option
                       (["--protocol-arg", "dialect=native"], "dialect must be one of prompted, trained"),
                       (["--protocol-arg", "n_paths=two"], "n_paths")):
        res, rows, out = run(tmp_path, monkeypatch, "--protocol", "parathinker", *args)
        assert res.exit_code == 2 and "--protocol-arg" in res.output and says in res.output, res.output
        assert not out.exists() and rows == []  # refused before the results file was created


def test_serve_bad_protocol_arg_fails_before_loading():
    res = CliRunner().invoke(main, ["serve", "--backend", "scripted", "--protocol", "apr",
                                    "--protocol-arg", "dialect=ancient"])
    assert res.exit_code == 2 and "--protocol-arg" in res.output and "dialect" in res.output


def test_serve_protocol_args_apply_to_its_protocol():
    env = {"PARAREASON_SCRIPTED_DEFAULT": REPLY, "PARAREASON_SCRIPTED_TOKENS_PER_STEP": "4"}
    with serve_process("-n", "1", *TRAINED_2, env=env) as (url, output):
        c = client(url)
        d = c.chat.completions.create(model="toy", messages=[{"role": "user", "content": "3+4?"}]).model_extra[
            "parareason"]
        assert d["protocol"] == "parathinker" and len(d["threads"]) == 3
        assert d["details"]["approximation"] == "flattened paths"
        # a request's own protocol_args win over the server's (here: the prompted dialect)
        body = {"parareason": {"protocol_args": {"dialect": "prompted"}}}
        d = c.chat.completions.create(model="toy", messages=[{"role": "user", "content": "3+4?"}],
                                      extra_body=body).model_extra["parareason"]
        assert len(d["threads"]) == 3 and "approximation" not in d["details"]  # n_paths=2 still holds
    assert "serving toy" in output[0] and "Traceback" not in output[0]


def _values(x):
    """Every dict nested in x (the settings file's layout is not this test's business)."""
    if isinstance(x, dict):
        yield x
        for v in x.values():
            yield from _values(v)
    elif isinstance(x, list):
        for v in x:
            yield from _values(v)
