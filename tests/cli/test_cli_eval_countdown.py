"""`parareason eval` on a Countdown file (io/countdown.py), graded by grading/countdown.py,
with both APR dialects (the scripted model stands in for the checkpoints)."""
from __future__ import annotations

import json
import re

from click.testing import CliRunner

from parareason import api
from parareason.backends.scripted import ScriptedBackend
from parareason.cli.main import main
from parareason.grading.countdown import find_problem
from parareason.io.countdown import solve, write_jsonl


def expression(nums: list[int], ops: list[str]) -> str:
    """The solution's operations as one expression over the given numbers."""
    exprs = [(n, str(n)) for n in nums]
    for op in ops:
        a, sym, b, c = re.fullmatch(r"(\d+)([+\-*/])(\d+)=(\d+)", op).groups()
        ea = exprs.pop(next(i for i, (v, _) in enumerate(exprs) if v == int(a)))
        eb = exprs.pop(next(i for i, (v, _) in enumerate(exprs) if v == int(b)))
        exprs.append((int(c), f"({ea[1]} {sym} {eb[1]})"))
    return exprs[0][1]


def apr_trace(target: int, nums: list[int], ops: list[str]) -> str:
    """A search trace that reaches the goal, then its solution path (APR's training format)."""
    steps, current, path = [], list(nums), f"Moving to Node #0\nCurrent State: {target}:{nums}, Operations: []\n"
    done: list[str] = []
    for k, op in enumerate(ops):
        a, _, b, c = re.fullmatch(r"(\d+)([+\-*/])(\d+)=(\d+)", op).groups()
        current.remove(int(a))
        current.remove(int(b))
        current.append(int(c))
        done.append(op)
        steps.append(f"Exploring Operation: {op}, Resulting Numbers: {current}\n")
        if k < len(ops) - 1:
            node = "#0" + ",0" * (k + 1)
            steps.append(f"Generated Node {node}: {target}:{current} Operation: {op}\nMoving to Node {node}\n"
                         f"Current State: {target}:{current}, Operations: {done}\n")
    body = "".join(steps) + f"{target},{target} equal: Goal Reached\n"
    return "\n" + body + path + body


def model(ctx):
    p = find_problem(ctx.text)
    ops = solve(p.target, list(p.nums))
    wrong = p.target % 2 == 1  # the "model" is wrong on odd targets
    if "Moving to Node #0" in ctx.text:  # the trained APR dialect: a search trace
        return apr_trace(p.target, list(p.nums), ops[:1] if wrong else ops)  # wrong: goal claimed early
    return f"So \\boxed{{{expression(list(p.nums), ops)}{' + 0' if wrong else ''}}}."


def run_eval(tmp_path, monkeypatch, fmt, extra):
    monkeypatch.setattr(api, "load_backend", lambda *a, **k: ScriptedBackend(model, tokens_per_step=50))
    data = write_jsonl(tmp_path / f"cd-{fmt}.jsonl", 6, seed=42, fmt=fmt)
    out = tmp_path / f"ev-{fmt}"
    res = CliRunner().invoke(main, ["eval", str(data), "-n", "1", "--max-new-tokens", "2000", "--out-dir", str(out),
                                    "-q", *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = {r["id"]: r for r in map(json.loads, (out / "results-sc.jsonl").read_text().splitlines())}
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    return [got[r["id"]]["correct"] for r in rows], [r["target"] % 2 == 0 for r in rows], got


def test_eval_countdown_prompted(tmp_path, monkeypatch):
    correct, expected, _ = run_eval(tmp_path, monkeypatch, "instruct", [])
    assert correct == expected and True in correct and False in correct


def test_eval_countdown_apr_trained(tmp_path, monkeypatch):
    correct, expected, got = run_eval(tmp_path, monkeypatch, "apr",
                                      ["--protocol", "apr", "--protocol-arg", "dialect=trained"])
    assert correct == expected
    some = next(iter(got.values()))
    assert some["answer"].startswith("Moving to Node #0\n") and some["protocol"] == "apr"


def test_bad_protocol_arg_is_a_usage_error(tmp_path):
    data = write_jsonl(tmp_path / "cd.jsonl", 1)
    res = CliRunner().invoke(main, ["eval", str(data), "--out-dir", str(tmp_path / "o"), "--protocol", "apr",
                                    "--protocol-arg", "dialect=native"])
    assert res.exit_code == 2 and "dialect must be one of prompted, trained" in res.output
    res = CliRunner().invoke(main, ["run", str(data), "--protocol", "parathinker", "--protocol-arg", "n_paths=0",
                                    "--backend", "scripted"])
    assert res.exit_code == 2 and "n_paths" in res.output


def test_protocol_args_from_a_config_table(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('protocol = "apr"\n[protocol_args]\ndialect = "trained"\n')
    correct, expected, got = run_eval(tmp_path, monkeypatch, "apr", ["--config", str(cfg)])
    assert correct == expected and next(iter(got.values()))["answer"].startswith("Moving to Node #0\n")
