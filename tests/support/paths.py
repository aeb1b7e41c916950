"""Paths the tests read: the repository root and tests/fixtures (sources in its README)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
