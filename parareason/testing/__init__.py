"""Test servers and helpers that tests and users can start (never used by the runtime itself)."""
