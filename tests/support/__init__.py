"""Helpers shared by the test folders (doubles, harnesses, small fake policies)."""
