"""Every /generate body the client builds passes SGLang's own checks (optional test).

Runs only where the `sglang` package is importable; on CPU that is
`pip install --no-deps sglang==0.5.23 msgspec` (see docs/sglang.md). `sglang/__init__.py`
imports the GPU stack (triton, zmq, ...), so the test registers a bare `sglang`
package and imports just the two pure modules it needs:
* `sglang/api/v1/api_types.py` `GenerateRequest.from_json_value`: the contract
  check `/generate` runs first (`srt/entrypoints/api_contract.py`, HTTP 400);
* `sglang/srt/sampling/sampling_params.py` `SamplingParams(**sp).normalize()` and
  `.verify(vocab_size)`: what the tokenizer manager does with `sampling_params`.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest

from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.sglang.config import SGLangConfig
from parareason.backends.sglang.request_body import build_body
from parareason.backends.sglang.server_facts import probe_body


@pytest.fixture(scope="module")
def sglang_checks():
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("sglang is not installed (pip install --no-deps sglang==0.5.23 msgspec)")
    saved = {k: v for k, v in sys.modules.items() if k == "sglang" or k.startswith("sglang.")}
    stub = types.ModuleType("sglang")
    stub.__path__ = list(spec.submodule_search_locations)  # skip sglang/__init__.py (GPU imports)
    sys.modules["sglang"] = stub
    try:
        api_types = importlib.import_module("sglang.api.v1.api_types")
        sampling = importlib.import_module("sglang.srt.sampling.sampling_params")
    except ImportError as e:
        pytest.skip(f"sglang modules not importable here: {e}")
    finally:
        # Leave no trace: other tests check that the client never imports sglang.
        for k in [k for k in sys.modules if k == "sglang" or k.startswith("sglang.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return api_types, sampling


PARAMS = [
    SamplingParams(),
    SamplingParams(temperature=0.0, max_new_tokens=64, top_logprobs=5),
    SamplingParams(temperature=0.7, top_p=0.95, top_k=40, seed=3, max_new_tokens=512),
    SamplingParams(stop_strings=("</think>", "\n\n"), stop_token_ids=(2, 7), top_logprobs=2),
    SamplingParams(ignore_eos=True, stop_token_ids=(2,), max_new_tokens=10_000),
    SamplingParams(temperature=1.3, top_p=0.5, seed=0, max_new_tokens=1),
]


class _Utf8Tokenizer:
    """What normalize() asks of the server's tokenizer: the length of a stop string in tokens."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode("utf-8"))


def _bodies() -> list[dict]:
    ids = tuple(range(100, 140))
    cfg = SGLangConfig()
    out = []
    for i, p in enumerate(PARAMS):
        req = GenerationRequest(f"t{i}", ids, p, affinity_key="q")
        out.append(build_body(req, f"t{i}.0123456789ab", cfg).body)
        out.append(build_body(req, f"t{i}.0123456789ab", cfg, context_length=60, dp_size=4).body)
    out += [probe_body(list(ids), 1.0), probe_body(list(ids), 0.5)]
    return out


@pytest.mark.parametrize("body", _bodies(), ids=lambda b: f"{b.get('rid', 'probe')}-{len(b)}")
def test_body_passes_sglangs_contract_and_sampling_checks(sglang_checks, body):
    api_types, sampling = sglang_checks
    api_types.GenerateRequest.from_json_value(body)  # raises JsonContractError on a violation
    sp = sampling.SamplingParams(**body["sampling_params"])
    sp.normalize(_Utf8Tokenizer())
    sp.verify(vocab_size=151_936)
    assert sp.max_new_tokens == body["sampling_params"]["max_new_tokens"]
    if body["sampling_params"].get("ignore_eos"):
        assert not sp.stop_token_ids  # never both: the server would ignore them


def test_the_contract_check_really_rejects(sglang_checks):
    api_types, _ = sglang_checks
    with pytest.raises(ValueError):
        api_types.GenerateRequest.from_json_value({"input_ids": [1], "sampling_params": {"max_new_tokens": "8"}})
