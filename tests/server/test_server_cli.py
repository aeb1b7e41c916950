"""`parareason serve` as a command: option checks, and a real process on loopback."""
from __future__ import annotations

from click.testing import CliRunner

from parareason.cli.main import main
from tests.support.server_harness import client, serve_process


def test_serve_help_and_bad_options_fail_before_loading():
    runner = CliRunner()
    r = runner.invoke(main, ["serve", "--help"])
    assert r.exit_code == 0 and "--max-in-flight" in r.output and "--policy" in r.output
    r = runner.invoke(main, ["serve", "--policy", "nope"])
    assert r.exit_code == 2 and "unknown policy" in r.output
    r = runner.invoke(main, ["serve", "--policy", "ffs", "--policy-arg", "zz=1"])
    assert r.exit_code == 2 and "zz" in r.output
    r = runner.invoke(main, ["serve", "--backend", "sglang"])
    assert r.exit_code == 2 and "--url" in r.output


def test_serve_process_answers_openai_requests():
    env = {"PARAREASON_SCRIPTED_DEFAULT": "So the answer is \\boxed{7}.", "PARAREASON_SCRIPTED_TOKENS_PER_STEP": "4"}
    with serve_process("--policy", "ffs", "-n", "3", env=env) as (url, output):
        r = client(url).chat.completions.create(model="toy", messages=[{"role": "user", "content": "hi"}])
        d = r.model_extra["parareason"]
        assert r.choices[0].message.content == "So the answer is \\boxed{7}."
        assert d["policy"] == "ffs" and d["n"] == 3 and d["answer"] == "7"
    assert "serving toy" in output[0] and "Traceback" not in output[0]
    assert "no API key" in output[0] and "WARNING" not in output[0]  # loopback: no exposure warning
