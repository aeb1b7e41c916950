"""`parareason run` on good inputs, with the hidden scripted test double."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from parareason.cli.main import main

TABLE = {"apples": "3 + 5 = 8 \\boxed{8}", "pencils": "\\boxed{48}"}


@pytest.fixture(autouse=True)
def scripted_env(monkeypatch):
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(TABLE))


def invoke(*args):
    return CliRunner().invoke(main, ["run", *map(str, args), "--backend", "scripted"], catch_exceptions=False)


def rows_of(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_jsonl_with_overrides_writes_result_contract_and_plain_lines(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "prompt": "apples?", "answer": "8"}) + "\n"
                 + json.dumps({"id": "b", "question": "pencils?", "answer": "47", "n": 5, "policy": "sc"}) + "\n")
    out = tmp_path / "r.jsonl"
    # --policy-arg k=1 is for ffs; the row asking for "sc" (which has no k) still runs
    res = invoke(p, "--out", out, "-n", 2, "--policy", "ffs", "--policy-arg", "k=1",
                 "--trace", tmp_path / "events.jsonl")
    assert res.exit_code == 0, res.output
    assert f"results -> {out}" in res.output
    # not a TTY: one plain line per finished prompt, then the summary
    assert "] a answer=8 correct" in res.output and "] b answer=48 wrong" in res.output
    assert "50.0%" in res.output
    rows = {r["id"]: r for r in rows_of(out)}
    assert set(rows) == {"a", "b"}
    for key in ("id", "prompt", "answer", "correct", "policy", "protocol", "threads", "usage", "latency_s",
                "error", "config_fingerprint"):
        assert key in rows["a"]
    assert len(rows["a"]["threads"]) == 2 and len(rows["b"]["threads"]) == 5
    assert rows["a"]["policy"] == "ffs" and rows["b"]["policy"] == "self_consistency"
    events = rows_of(tmp_path / "events.jsonl")
    assert {e["req"] for e in events} == {"a", "b"} and any(e["ev"] == "request_end" for e in events)


def test_plain_text_input_and_default_output_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.txt").write_text("How many apples?\n\nHow many pencils?\n")
    res = invoke("p.txt", "-n", 1, "-q")
    assert res.exit_code == 0, res.output
    [out] = list((tmp_path / "runs").glob("*.jsonl"))
    assert f"results -> runs/{out.name}" in res.output
    rows = rows_of(out)
    assert sorted(r["id"] for r in rows) == ["line-1", "line-3"]
    assert all(r["correct"] is None for r in rows)


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_config_file_sets_defaults_and_flags_override(tmp_path, fmt):
    p = tmp_path / "p.txt"
    p.write_text("apples?\n")
    cfg = tmp_path / f"c.{fmt}"
    if fmt == "toml":  # dashes or underscores; policy_args as a table or "k=v" strings
        cfg.write_text("n = 4\npolicy = 'ffs'\nmax-new-tokens = 64\ntemperature = 0.3\n[policy_args]\nk = 1\n")
    else:
        cfg.write_text(json.dumps({"n": 4, "policy": "ffs", "max_new_tokens": 64, "temperature": 0.3,
                                   "policy_args": ["k=1"]}))
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert invoke(p, "--config", cfg, "--out", out1, "-q").exit_code == 0
    [row] = rows_of(out1)
    assert row["policy"] == "ffs" and len(row["threads"]) == 4
    assert invoke(p, "--config", cfg, "--out", out2, "-q", "-n", 2).exit_code == 0  # the flag wins
    [row] = rows_of(out2)
    assert len(row["threads"]) == 2
    settings = json.loads((tmp_path / "b.jsonl.config.json").read_text())
    [cfg_used] = settings.values()
    assert cfg_used["temperature"] == 0.3 and cfg_used["policy_args"] == {"k": 1} and cfg_used["n"] == 2


def test_sglang_backend_with_two_workers_over_real_http(tmp_path, monkeypatch):
    """`--backend sglang --url A --url B` through the SGLang client and real HTTP, against
    two SGLang stand-in servers backed by the scripted test double (no CUDA here)."""
    from parareason.backends import embedded as transformers_engine
    from parareason.backends.scripted import CharTokenizer, ScriptedBackend
    from parareason.testing.sglang_standin import SGLangStandin

    # the local tokenizer must match the servers' (checked by the client at start-up)
    monkeypatch.setattr(transformers_engine, "load_tokenizer", lambda model=None: CharTokenizer())
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"id": f"q{k}", "prompt": f"apples {k}?", "answer": "8"}) + "\n"
                         for k in range(4)))
    out = tmp_path / "r.jsonl"
    servers = [SGLangStandin(ScriptedBackend.from_table(TABLE, tokens_per_step=3)).start() for _ in range(2)]
    try:
        args = ["run", str(p), "--backend", "sglang", "--out", str(out), "-n", "2", "-q"]
        for s in servers:
            args += ["--url", s.url]
        res = CliRunner().invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        served = [len(s.generate_requests) for s in servers]
    finally:
        for s in servers:
            s.stop()
    rows = rows_of(out)
    assert sorted(r["id"] for r in rows) == ["q0", "q1", "q2", "q3"]
    assert all(r["correct"] is True and len(r["threads"]) == 2 for r in rows)
    assert sum(served) >= 8, served  # every sample went over HTTP (routing between workers is the client's)
    facts = rows[0]["details"]["backend"]  # what the client's start-up checks found
    assert facts["logprobs"] in ("original", "temperature-scaled", "unknown") and "seeded_reruns_repeat" in facts
    assert "server: " in res.output


def test_unreachable_server_is_a_clean_error(tmp_path, monkeypatch):
    from parareason.backends import embedded as transformers_engine
    from parareason.backends.scripted import CharTokenizer

    monkeypatch.setattr(transformers_engine, "load_tokenizer", lambda model=None: CharTokenizer())
    p = tmp_path / "p.txt"
    p.write_text("apples?\n")
    res = CliRunner().invoke(main, ["run", str(p), "--backend", "sglang", "--url", "http://127.0.0.1:9",
                                    "--out", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 1, res.output
    assert "cannot load sglang backend" in res.output and "Traceback" not in res.output
