"""Fixtures shared by every test folder.

`engine`: the small shipped model (smollm2-135m) in the embedded engine, loaded once per
session. float32: the engine tests check exact, batch-independent tokens and cached-prefix
KV equal to a recompute; in bfloat16 (what dtype auto picks on AMX CPUs) a near-tie can
flip when the batch changes (README "Compute dtype"). Modules that change its options
or caches reset them in their own autouse fixtures.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.support.engine_util import TEST_MODEL

# CI runs the property tests derandomized: a CI verdict is then a fact about the code, not
# about the day's random draw (a local run still explores new examples every time).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def engine():
    from parareason.backends.registry import load_backend

    try:
        eng = load_backend("embedded", TEST_MODEL, dtype="float32")
    except Exception as e:  # noqa: BLE001 - the shipped model wheel is installed by `make setup`
        pytest.fail(f"{TEST_MODEL} must load for this test (make setup installs it): {e}")
    yield eng
    eng.close()
