"""A model that names a released checkpoint of a protocol defaults that protocol to the
trained dialect (runtime/protocols/checkpoints.py), in the registry, the Python API, the
CLI and the server; an explicit dialect wins; every other model stays prompted."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from parareason import api
from parareason.backends.scripted import ScriptedBackend
from parareason.cli.main import main
from parareason.runtime.protocols import checkpoint_protocol, get_protocol, with_default_dialect
from tests.support.server_harness import MODEL, client, scripted_server

PARATHINKER = "Leslie04/ParaThinker-1.5B"
REPLY = "It is 7. \\boxed{7}"


@pytest.mark.parametrize("model,protocol", [
    ("Parallel-Reasoning/llama-apr_cond10_grpo", "apr"),  # APR README.md
    ("Parallel-Reasoning/apr_cond10_grpo", "apr"),  # tinyrl/README.md
    ("/ckpt/llama-apr-beam10_subbeam15_num_subcall_cond", "apr"),  # tinyrl/configs/apr_cond10.yaml
    (PARATHINKER, "parathinker"),
    ("/root/.cache/huggingface/hub/models--Leslie04--ParaThinker-1.5B/snapshots/0a1b2c", "parathinker"),
    ("D:\\models\\parathinker-7b", "parathinker"),
    ("ckpts/Q3-8B-131072-SFT", "threadweaver"),  # ThreadWeaver's SFT reproduction (no release)
    ("ckpts/Q3-8B-131072-SFT-20251201_101500/checkpoint-500", "threadweaver"),
    ("Parallel-Reasoning/llama-sosp", None),  # SoS+: a serialized search, no sub searches
    ("ckpts/Q3-8B-131072-AR-SFT", None),  # ThreadWeaver's sequential baseline
    ("/models/ParaThinker-1.5B-distilled", None),  # a whole component must match
    ("smollm2-135m", None),
    (None, None),
])
def test_released_checkpoint_names(model, protocol):
    assert checkpoint_protocol(model) == protocol


def test_registry_default_and_an_explicit_dialect_wins():
    assert get_protocol("parathinker", model=PARATHINKER).dialect == "trained"
    assert get_protocol("ParaThinker", model=PARATHINKER.lower()).dialect == "trained"
    assert get_protocol("parathinker", model=PARATHINKER, dialect="prompted").dialect == "prompted"
    assert get_protocol("apr", model=PARATHINKER).dialect == "prompted"  # another protocol's checkpoint
    assert get_protocol("apr", model="Parallel-Reasoning/apr_grpo").dialect == "trained"
    assert get_protocol("threadweaver", model="ckpts/Q3-8B-131072-SFT").dialect == "trained"
    assert get_protocol("parathinker", model="smollm2-135m").dialect == "prompted"
    assert get_protocol("parathinker").dialect == "prompted"
    assert with_default_dialect("parathinker", PARATHINKER, {"n_paths": 2}) == {"n_paths": 2, "dialect": "trained"}
    assert with_default_dialect("parathinker", PARATHINKER, {"dialect": "prompted"}) == {"dialect": "prompted"}
    assert with_default_dialect("parathinker", "smollm2-135m", {"n_paths": 2}) == {"n_paths": 2}


def dialects_seen(backend) -> set[str]:
    """Which dialect each submitted context was written in: the trained one starts from the
    checkpoint's template, the prompted one opens paths with `<think path=k>`."""
    texts = [backend.tokenizer.decode(r.input_ids) for r in backend.submitted]
    backend.submitted.clear()
    return {"trained" if "<｜Assistant｜><think>" in t else "prompted" if "<think path=" in t else "?"
            for t in texts}


def test_api_engine_defaults_by_model_and_rows_of_another_protocol():
    be = ScriptedBackend(lambda ctx: REPLY, tokens_per_step=50)
    engine = api.Engine(PARATHINKER, backend=be)
    [r] = engine.run(["What is 3 + 4?"], protocol="parathinker", protocol_args={"n_paths": 2}, n=1)
    assert r.details["approximation"] == "flattened paths" and len(r.threads) == 3
    assert dialects_seen(be) == {"trained"}
    # a row naming parathinker while the run's protocol is plain: the model's default too
    [r] = engine.run([{"prompt": "What is 3 + 4?", "protocol": "parathinker"}], n=1)
    assert r.details["approximation"] == "flattened paths" and dialects_seen(be) == {"trained"}
    [r] = engine.run(["What is 3 + 4?"], protocol="parathinker", protocol_args={"dialect": "prompted"}, n=1)
    assert "approximation" not in r.details and dialects_seen(be) == {"prompted"}
    [r] = api.Engine("smollm2-135m", backend=be).run(["What is 3 + 4?"], protocol="parathinker", n=1)
    assert "approximation" not in r.details and dialects_seen(be) == {"prompted"}


@pytest.mark.parametrize("model,extra,trained", [
    (PARATHINKER, [], True),
    (PARATHINKER, ["--protocol-arg", "dialect=prompted"], False),
    ("toy", [], False),
])
def test_cli_run_defaults_by_model(tmp_path, monkeypatch, model, extra, trained):
    monkeypatch.setenv("PARAREASON_SCRIPTED_DEFAULT", REPLY)
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "prompt": "What is 3 + 4?", "answer": "7"}) + "\n")
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(main, ["run", str(p), "--backend", "scripted", "--model", model, "--protocol",
                                    "parathinker", "--protocol-arg", "n_paths=2", *extra, "-n", "1", "-q",
                                    "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    [row] = [json.loads(x) for x in out.read_text().splitlines()]
    assert ("approximation" in row["details"]) is trained and len(row["threads"]) == 3
    settings = json.loads(out.with_name(out.name + ".config.json").read_text())
    assert json.dumps(settings).count('"dialect": "trained"') == trained  # the fingerprint says the dialect


def test_server_defaults_by_its_model_and_a_request_dialect_wins():
    with scripted_server(n=1, model=PARATHINKER, script=lambda ctx: REPLY) as (url, backend, _):
        c = client(url)
        body = {"parareason": {"protocol": "parathinker", "protocol_args": {"n_paths": 2}}}
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}], extra_body=body)
        assert r.model_extra["parareason"]["details"]["approximation"] == "flattened paths"
        assert dialects_seen(backend) == {"trained"}
        body["parareason"]["protocol_args"]["dialect"] = "prompted"
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}], extra_body=body)
        assert "approximation" not in r.model_extra["parareason"]["details"]
        assert dialects_seen(backend) == {"prompted"}
