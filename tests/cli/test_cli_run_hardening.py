"""`parareason run` refuses what would break it later, before anything is created or
loaded (issue 17 items 2, 4-7). The hidden scripted backend stands in for a model."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from parareason.cli.main import main

TABLE = {"apples": "3 + 5 = 8 \\boxed{8}"}


@pytest.fixture(autouse=True)
def scripted_env(monkeypatch):
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(TABLE))


def invoke(*args, backend="scripted"):
    return CliRunner().invoke(main, ["run", *map(str, args), "--backend", backend], catch_exceptions=False)


@pytest.fixture
def prompts(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "prompt": "apples?", "answer": "8"}) + "\n")
    return p


def created(tmp_path, *keep):
    return sorted(x.name for x in tmp_path.iterdir() if x.name not in keep)


def test_a_lone_surrogate_is_refused_with_file_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "apples?"}\n{"prompt": "bad \\ud800"}\n')
    res = invoke(p, "--out", tmp_path / "out.jsonl")
    assert res.exit_code == 2 and f"{p}:2: 'prompt' holds a lone surrogate" in res.output
    assert created(tmp_path) == ["p.jsonl"]


@pytest.mark.parametrize("arg,fragment", [
    ("k=abc", "parameter 'k' must be an integer, got 'abc'"),
    ("k=-3", "parameter 'k' must be >= 1, got -3"),
    ("temperature=[1]", "parameter 'temperature' must be a finite number or null"),
])
def test_bad_policy_arg_values_fail_before_loading(tmp_path, prompts, arg, fragment):
    # the real embedded backend: any failure after loading would print "loading"
    res = invoke(prompts, "--policy", "ffs", "--policy-arg", arg, "--out", tmp_path / "o.jsonl", backend="embedded")
    assert res.exit_code == 2, res.output
    assert "--policy-arg" in res.output and fragment in res.output
    assert "loading" not in res.output and "Traceback" not in res.output
    assert created(tmp_path) == ["p.jsonl"]


def test_rows_policy_and_protocol_errors_name_the_file(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text(json.dumps({"prompt": "x"}) + "\n" + json.dumps({"prompt": "y", "policy": "nope"}) + "\n")
    res = invoke(p)
    assert res.exit_code == 2 and f"{p}:2: unknown policy 'nope'" in res.output
    p.write_text(json.dumps({"prompt": "x"}) + "\n" + json.dumps({"prompt": "y", "protocol": "morse"}) + "\n")
    res = invoke(p)
    assert res.exit_code == 2 and f"{p}:2: unknown protocol 'morse'" in res.output


@pytest.mark.parametrize("option,value", [("--temperature", "nan"), ("--temperature", "inf"),
                                          ("--top-p", "nan"), ("--deadline", "inf"), ("--deadline", "nan")])
def test_non_finite_float_options_are_refused(tmp_path, prompts, option, value):
    res = invoke(prompts, option, value, "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "not a finite number" in res.output
    assert created(tmp_path) == ["p.jsonl"]


def test_nan_from_a_config_file_is_refused_and_no_sidecar_holds_nan(tmp_path, prompts):
    cfg = tmp_path / "c.toml"
    cfg.write_text("temperature = nan\n")  # TOML has nan
    res = invoke(prompts, "--config", cfg, "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "not a finite number" in res.output
    assert created(tmp_path) == ["c.toml", "p.jsonl"]
    res = invoke(prompts, "--out", tmp_path / "o.jsonl", "-q")
    assert res.exit_code == 0, res.output
    json.loads((tmp_path / "o.jsonl.config.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_unusable_out_is_one_line_exit_2_and_creates_nothing(tmp_path, prompts, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    res = invoke(prompts, "--out", a_file / "out.jsonl")
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0, res.output
    assert res.output.startswith("Error: --out:") and "is a file, not a directory" in res.output
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access  # root ignores permission bits: let the OS "refuse" this folder
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    res = invoke(prompts, "--out", locked / "out.jsonl")
    assert res.exit_code == 2 and "permission denied" in res.output and "Traceback" not in res.output
    res = invoke(prompts, "--out", tmp_path / "ok.jsonl", "--trace", locked / "events.jsonl")
    assert res.exit_code == 2 and "--trace" in res.output
    assert created(tmp_path) == ["file.txt", "locked", "p.jsonl"] and not any(locked.iterdir())


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_out_in_a_folder_whose_permission_bits_lie_is_refused_before_running(tmp_path, prompts):
    # /proc reads as writable (to root) but no file can be created in it: before, preflight
    # passed and the run then exited 1 with a traceback-free but late error
    res = invoke(prompts, "--out", "/proc/o.jsonl")
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0, res.output
    assert res.output.startswith("Error: --out: /proc/o.jsonl: cannot create files in /proc")
    assert "running" not in res.output


def test_unknown_model_leaves_nothing_behind(tmp_path, prompts):
    out = tmp_path / "sub" / "out.jsonl"
    res = invoke(prompts, "--model", "no-such-model", "--out", out, backend="embedded")
    assert res.exit_code == 2 and "unknown model 'no-such-model'" in res.output and "loading" not in res.output
    assert created(tmp_path) == ["p.jsonl"]


@pytest.mark.parametrize("backend", ["sglang", "vllm"])
def test_unknown_model_of_a_remote_backend_fails_before_connecting(tmp_path, prompts, monkeypatch, backend):
    """The HTTP clients load --model's tokenizer, so a typo is refused as early as with embedded."""
    from dataclasses import replace

    from parareason.backends.registry import BACKENDS

    def never(*a, **k):
        raise AssertionError(f"the {backend} backend was built")

    monkeypatch.setitem(BACKENDS, backend, replace(BACKENDS[backend], factory=never))
    out = tmp_path / "sub" / "out.jsonl"
    res = invoke(prompts, "--model", "no-such-model", "--out", out, "--url", "http://127.0.0.1:9", backend=backend)
    assert res.exit_code == 2 and "unknown model 'no-such-model'" in res.output and "loading" not in res.output
    assert created(tmp_path) == ["p.jsonl"]


def test_trace_equal_to_out_and_out_equal_to_input_are_refused(tmp_path, prompts):
    out = tmp_path / "out.jsonl"
    res = invoke(prompts, "--out", out, "--trace", tmp_path / "." / "out.jsonl")
    assert res.exit_code == 2 and "--trace" in res.output and "also --out" in res.output
    res = invoke(prompts, "--out", prompts, "--resume", "--force")
    assert res.exit_code == 2 and "is the input file" in res.output
    res = invoke(prompts, "--out", tmp_path / "o.jsonl", "--trace", prompts)
    assert res.exit_code == 2 and "is the input file" in res.output
    assert created(tmp_path) == ["p.jsonl"]
    assert json.loads(prompts.read_text()) == {"id": "a", "prompt": "apples?", "answer": "8"}


def roots(row):
    """Samples a result ran: its root threads."""
    return sum(1 for t in row["threads"] if t["parent"] is None)


def test_n_above_the_cap_is_capped_said_once_and_recorded(tmp_path):
    # before: the note said "at most 64 run at once", but sc ran 64 in total (launching
    # stops at the first refusal) while the config recorded n=100
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"id": str(i), "prompt": "apples?", "n": 80 if i else 2}) + "\n"
                         for i in range(3)) + json.dumps({"id": "run-n", "prompt": "apples?"}) + "\n")
    out = tmp_path / "o.jsonl"
    res = invoke(p, "-n", "100", "--out", out, "--max-new-tokens", "8", "-q")
    assert res.exit_code == 0, res.output
    assert res.output.count("above the per-request cap of 64") == 1
    assert "n=100" in res.output and "running n=64 for 3 of 4 prompt(s)" in res.output
    [config] = json.loads((tmp_path / "o.jsonl.config.json").read_text()).values()
    assert (config["n"], config["n_asked"]) == (64, 100)
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: roots(r) for k, r in rows.items()} == {"0": 2, "1": 64, "2": 64, "run-n": 64}
    res = invoke(p, "-n", "2", "--out", tmp_path / "o2.jsonl", "-q")
    assert res.output.count("above the per-request cap") == 1  # rows' own n count too
    assert "n=80" in res.output and "2 of 4 prompt(s)" in res.output
    [config] = json.loads((tmp_path / "o2.jsonl.config.json").read_text()).values()
    assert config["n"] == 2 and "n_asked" not in config  # the run's own n was not capped
    p.write_text(json.dumps({"prompt": "apples?"}) + "\n")
    res = invoke(p, "-n", "4", "--out", tmp_path / "o3.jsonl", "-q")
    assert "above the per-request cap" not in res.output


def test_a_complete_last_line_without_newline_is_kept_on_resume(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("apples one?\napples two?\n")
    out = tmp_path / "o.jsonl"
    assert invoke(p, "--out", out, "-q", "-n", "2").exit_code == 0
    before = out.read_bytes()
    out.write_bytes(before.rstrip(b"\n"))
    res = invoke(p, "--out", out, "-q", "-n", "2", "--resume")
    assert res.exit_code == 0 and "2 of 2 already done" in res.output and "newline added" in res.output
    assert out.read_bytes() == before


def test_record_refuses_non_finite_floats_unknown_models_and_bad_out_creating_nothing(tmp_path, prompts):
    def record(*args):
        return CliRunner().invoke(main, ["record", str(prompts), *map(str, args)], catch_exceptions=False)

    for option in ("--temperature", "--top-p"):
        res = record(option, "nan", "--out", tmp_path / "t.jsonl", "--backend", "scripted")
        assert res.exit_code == 2 and "not a finite number" in res.output
    res = record("--model", "no-such-model", "--out", tmp_path / "t.jsonl")
    assert res.exit_code == 2 and "unknown model 'no-such-model'" in res.output and "loading" not in res.output
    res = record("--out", prompts / "t.jsonl", "--backend", "scripted")
    assert res.exit_code == 2 and res.output.startswith("Error: --out:")
    assert created(tmp_path) == ["p.jsonl"]


@pytest.mark.parametrize("args", [["serve", "--temperature", "nan"], ["serve", "--max-deadline", "inf"],
                                  ["eval", "x.jsonl", "--deadline", "nan"],
                                  ["judge", "eval", "t.jsonl", "--threshold", "inf"],
                                  ["judge", "train", "t.jsonl", "--out", "h.pt", "--min-precision", "nan"],
                                  ["bench", "policies", "--temperature", "nan"],
                                  ["bench", "deepprune", "--threshold", "nan"],
                                  ["bench", "serve", "--temperature", "inf"]])
def test_every_command_refuses_non_finite_floats(args):
    from click.testing import CliRunner

    from parareason.cli.main import main

    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "not a finite number" in res.output, res.output
