"""`bench engines --weights`: the option reaches the embedded row, which loads that format
(no vLLM here: the vLLM rows are the live tests' job, tests/backends/test_vllm_live.py)."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from parareason.bench.engines_bench import EnginesBenchConfig, _embedded
from parareason.cli.main import main
from tests.support.engine_util import TEST_MODEL


def test_the_weights_option_reaches_the_config(monkeypatch, tmp_path):
    import parareason.cli.bench.engines as cmd

    seen: list[EnginesBenchConfig] = []
    monkeypatch.setattr(cmd, "run_engines_bench", lambda cfg: seen.append(cfg) or [])
    out = str(tmp_path / "B.md")
    assert CliRunner().invoke(main, ["bench", "engines", "--weights", "int8", "--out", out]).exit_code == 0
    assert CliRunner().invoke(main, ["bench", "engines", "--out", out]).exit_code == 0
    assert [c.weights for c in seen] == ["int8", "full"]
    bad = CliRunner().invoke(main, ["bench", "engines", "--weights", "int4", "--out", out])
    assert bad.exit_code == 2 and "--weights" in bad.output and len(seen) == 2


@pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines, reason="int8 weights need fbgemm")
def test_the_embedded_row_runs_in_the_chosen_format():
    from parareason.backends.embedded import load_tokenizer

    ids = load_tokenizer(TEST_MODEL).chat_ids([{"role": "user", "content": "What is 2+2?"}])
    row = _embedded(EnginesBenchConfig(model=TEST_MODEL, n=2, max_new_tokens=3, weights="int8"), ids)
    assert row.label == "embedded engine, int8 weights" and row.note.endswith(", int8 weights")
    assert 0 < row.tokens <= 6 and row.seconds > 0

