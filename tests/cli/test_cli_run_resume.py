"""Kill `parareason run` with SIGKILL mid-run, resume, and get exactly the results of an
uninterrupted run: none lost, none duplicated, the half-written line repaired.

Uses the hidden `--backend scripted` test double (no model) in a real subprocess.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from parareason.cli.main import main

N_PROMPTS = 24


def make_inputs(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Question {k}: what is {k} plus one?\n" for k in range(N_PROMPTS)))
    # Replies of different lengths, so requests finish out of order.
    table = {f"Question {k}:": "Let me think. " * (k % 5) + f"The answer is \\boxed{{{k + 1}}}."
             for k in range(N_PROMPTS)}
    return prompts, table


def cli(args, table, latency_s, **popen):
    env = {**os.environ, "PARAREASON_SCRIPTED_TABLE": json.dumps(table),
           "PARAREASON_SCRIPTED_LATENCY_S": str(latency_s), "PARAREASON_SCRIPTED_TOKENS_PER_STEP": "4"}
    cmd = [sys.executable, "-m", "parareason.cli.main", "run", *map(str, args), "--backend", "scripted",
           "-n", "3", "--concurrency", "3", "--quiet"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def comparable(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    ids = [r["id"] for r in rows]
    # Latency and the prefix-cache split (cached vs computed prefill, which depends on what
    # ran before in the same process) differ run to run; everything else must match.
    out = {}
    for r in rows:
        r = {k: v for k, v in r.items() if k != "latency_s"}
        r["usage"] = {k: v for k, v in r["usage"].items() if k not in ("cached_tokens", "prefill_computed_tokens")}
        out[r["id"]] = r
    return ids, out


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    prompts, table = make_inputs(tmp_path)
    ref_out, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    ref = cli([prompts, "--out", ref_out], table, latency_s=0)
    assert ref.wait(timeout=60) == 0, ref.stdout.read()

    victim = cli([prompts, "--out", out], table, latency_s=0.02)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    done_before = out.read_bytes().count(b"\n")
    assert 4 <= done_before < N_PROMPTS, "the kill must land mid-run"
    with open(out, "ab") as f:  # what a kill in the middle of a write leaves behind
        f.write(b'{"id": "line-7", "prompt": "Quest')

    resumed = cli([prompts, "--out", out, "--resume"], table, latency_s=0)
    log = resumed.communicate(timeout=60)[0]
    assert resumed.returncode == 0, log
    assert "dropped a half-written last line" in log
    assert f"{done_before} of {N_PROMPTS} already done" in log

    ids, rows = comparable(out)
    ref_ids, ref_rows = comparable(ref_out)
    assert len(ids) == len(set(ids)) == N_PROMPTS
    assert set(ids) == set(ref_ids)
    assert rows == ref_rows
    assert sum(r["correct"] is None for r in rows.values()) == N_PROMPTS  # plain text: no references

    again = cli([prompts, "--out", out, "--resume"], table, latency_s=0)
    log = again.communicate(timeout=60)[0]
    assert again.returncode == 0 and f"{N_PROMPTS} of {N_PROMPTS} already done" in log
    assert comparable(out)[0] == ids


def test_resume_with_other_settings_is_refused_unless_forced(tmp_path, monkeypatch):
    prompts, table = make_inputs(tmp_path)
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(table))
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    base = ["run", str(prompts), "--backend", "scripted", "--out", str(out), "-q", "-n", "2"]
    assert runner.invoke(main, base).exit_code == 0
    res = runner.invoke(main, base)
    assert res.exit_code == 1 and "already exists; pass --resume" in res.output
    res = runner.invoke(main, base[:-1] + ["3", "--resume"])
    assert res.exit_code == 1 and "differs in: n 2 -> 3" in res.output
    res = runner.invoke(main, base[:-1] + ["3", "--resume", "--force"])
    assert res.exit_code == 0 and f"{N_PROMPTS} of {N_PROMPTS} already done" in res.output
    # a changed prompt text under the same id is caught too
    prompts.write_text(prompts.read_text().replace("Question 0:", "Question zero:"))
    res = runner.invoke(main, base + ["--resume"])
    assert res.exit_code == 1 and "different prompt text" in res.output


@pytest.mark.parametrize("sig,status,word", [(signal.SIGTERM, 143, "terminated:"), (signal.SIGINT, 130, "interrupted:")])
def test_sigterm_stops_cleanly_and_says_how_to_resume(tmp_path, sig, status, word):
    prompts, table = make_inputs(tmp_path)
    out = tmp_path / "out.jsonl"
    proc = cli([prompts, "--out", out], table, latency_s=0.02)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and out.read_bytes().count(b"\n") >= 2):
        time.sleep(0.01)
    proc.send_signal(sig)
    log = proc.communicate(timeout=30)[0]
    assert proc.returncode == status, log  # 128 + the signal, the shell's convention
    assert word in log and "rerun with --resume" in log and "Traceback" not in log
    ids, _ = comparable(out)  # every line written is complete
    assert 2 <= len(ids) < N_PROMPTS and len(set(ids)) == len(ids)
