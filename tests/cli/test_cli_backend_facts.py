"""A server's facts (logprob scaling, seeded reruns, context length) reach the run's settings,
eval's summary and the API's results, against the SGLang stand-in in its scaled-logprob mode.

The facts are known only once the backend loaded, after the settings sidecar was written:
they join the sidecar entry as `backend_facts`, outside the fingerprint (so `--resume`
still matches), and every result's `details["backend"]`.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from parareason.cli.main import main
from parareason.io.results import config_fingerprint
from parareason.io.settings_sidecar import BACKEND_FACTS

TABLE = {"apples": "3 + 5 = 8 \\boxed{8}"}
SCALED = {"logprobs": "temperature-scaled", "seeded_reruns_repeat": False}


@pytest.fixture
def server(monkeypatch):
    from parareason.backends import embedded
    from parareason.backends.scripted import CharTokenizer, ScriptedBackend
    from parareason.testing.sglang_standin import SGLangStandin, StandinModes

    # the local tokenizer must match the server's (checked by the client at start-up)
    monkeypatch.setattr(embedded, "load_tokenizer", lambda model=None: CharTokenizer())
    # a default reply: the start-up probe needs a token (and its alternatives) for any prompt
    srv = SGLangStandin(ScriptedBackend.from_table(TABLE, default="ok", tokens_per_step=4),
                        modes=StandinModes.real_defaults(context_length=4096)).start()
    yield srv
    srv.stop()


def prompts(tmp_path, k: int = 2):
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"apples {i}?", "answer": "8"}) + "\n"
                         for i in range(k)))
    return p


def assert_scaled(facts: dict) -> None:
    assert {k: facts[k] for k in SCALED} == SCALED and facts["context_length"] == 4096
    assert facts["max_req_input_len"] == 4090


def test_run_records_the_facts_in_its_settings_outside_the_fingerprint(tmp_path, server):
    p, out = prompts(tmp_path), tmp_path / "r.jsonl"
    args = ["run", str(p), "--backend", "sglang", "--url", server.url, "--out", str(out), "-n", "2", "-q"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    [(fp, entry)] = json.loads((tmp_path / "r.jsonl.config.json").read_text()).items()
    assert_scaled(entry[BACKEND_FACTS])
    settings = {k: v for k, v in entry.items() if k != BACKEND_FACTS}
    assert fp == config_fingerprint(settings) == rows[0]["config_fingerprint"]
    assert all(r["details"]["backend"] == entry[BACKEND_FACTS] for r in rows)
    # A resume matches the fingerprint; with nothing left to run it loads no backend and keeps the facts.
    res = CliRunner().invoke(main, [*args, "--resume"], catch_exceptions=False)
    assert res.exit_code == 0 and "2 of 2 already done" in res.output, res.output
    [entry_after] = json.loads((tmp_path / "r.jsonl.config.json").read_text()).values()
    assert entry_after == entry


def test_eval_summary_and_settings_carry_the_facts(tmp_path, server):
    out_dir = tmp_path / "ev"
    res = CliRunner().invoke(main, ["eval", str(prompts(tmp_path)), "--backend", "sglang", "--url", server.url,
                                    "--policies", "sc", "-n", "2", "--out-dir", str(out_dir), "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert_scaled(json.loads((out_dir / "summary.json").read_text())["meta"]["backend_facts"])
    [entry] = json.loads((out_dir / "results-sc.jsonl.config.json").read_text()).values()
    assert_scaled(entry[BACKEND_FACTS])


def test_api_results_carry_the_facts(server):
    from parareason.api import Engine

    with Engine("scripted-char", backend="sglang", urls=[server.url]) as engine:
        [r] = engine.run(["apples?"], n=2)
    assert r.error is None and r.answer == "8"
    assert_scaled(r.details["backend"])
