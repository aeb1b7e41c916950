"""thread_env.py: the OpenMP default parareason sets for its own threads stays out of the
outside tools' environment (llama.cpp, vLLM), and a value the user set passes through."""
from __future__ import annotations

import os

from parareason import thread_env
from parareason.testing.llama_cpp import binary_env
from parareason.testing.vllm_server import server_env


def test_the_default_set_here_is_kept_from_outside_tools(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(thread_env, "_set_here", {})
    thread_env.apply_defaults()
    try:
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert "OMP_WAIT_POLICY" not in thread_env.outside_env()
        assert "OMP_WAIT_POLICY" not in binary_env(tmp_path)
        assert "OMP_WAIT_POLICY" not in server_env()
        assert thread_env.outside_env({"X_EXTRA": "1"})["X_EXTRA"] == "1"
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


def test_a_users_own_setting_passes_through(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(thread_env, "_set_here", {})
    thread_env.apply_defaults()  # already set: not ours
    assert thread_env.outside_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert binary_env(tmp_path)["OMP_WAIT_POLICY"] == "PASSIVE"
