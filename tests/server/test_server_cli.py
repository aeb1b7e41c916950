"""`parareason serve` as a command: option checks, and a real process on loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from click.testing import CliRunner

from parareason.cli.main import main
from tests.support.server_harness import client, free_port


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
    port = free_port()
    env = {**os.environ, "PARAREASON_SCRIPTED_DEFAULT": "So the answer is \\boxed{7}.",
           "PARAREASON_SCRIPTED_TOKENS_PER_STEP": "4"}
    cmd = [sys.executable, "-m", "parareason.cli.main", "serve", "--backend", "scripted", "--model", "toy",
           "--port", str(port), "--policy", "ffs", "-n", "3", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else "server exited"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() - t0 < 60, "server did not come up"
            time.sleep(0.2)
        r = client(url).chat.completions.create(model="toy", messages=[{"role": "user", "content": "hi"}])
        d = r.model_extra["parareason"]
        assert r.choices[0].message.content == "So the answer is \\boxed{7}."
        assert d["policy"] == "ffs" and d["n"] == 3 and d["answer"] == "7"
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (lifespan stops the engine loop)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    out = proc.stdout.read() if proc.stdout else ""
    assert "serving toy" in out and "Traceback" not in out
    assert "no API key" in out and "WARNING" not in out  # loopback: no exposure warning
