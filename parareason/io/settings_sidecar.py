"""`<out>.config.json`: the settings of every fingerprint a results file was written under.

Each entry is a run's settings (what the fingerprint hashes) and, once the backend has
loaded, `backend_facts`: what it found about the server (e.g. SGLang's temperature-scaled
logprobs, whether seeded reruns repeat, the context length). The facts are known only after
the entry was first written and describe the server, not the settings, so they stay out of
the fingerprint: `--resume` matches with or without them, and a resume that loads no
backend keeps the facts already recorded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

BACKEND_FACTS = "backend_facts"


def read_sidecar(path: Path) -> dict[str, Any]:
    """{fingerprint: entry}; {} when absent or unreadable."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def write_entry(path: Path, fingerprint: str, config: Mapping[str, Any],
                facts: Mapping[str, Any] | None = None) -> None:
    """Set this fingerprint's entry (atomically); ValueError for a non-finite number."""
    known = read_sidecar(path)
    old = known.get(fingerprint)
    facts = facts or (old.get(BACKEND_FACTS) if isinstance(old, dict) else None)
    known[fingerprint] = {**config, **({BACKEND_FACTS: dict(facts)} if facts else {})}
    text = json.dumps(known, indent=1, sort_keys=True, default=str, allow_nan=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def describe_difference(path: Path, fingerprints: Iterable[str], config: Mapping[str, Any]) -> str:
    """'key old -> new, ...' between the settings of `fingerprints` and `config`."""
    known = read_sidecar(path)
    parts = []
    for fp in sorted(fingerprints):
        old = known.get(fp)
        if not isinstance(old, dict):
            continue
        for k in sorted((set(old) | set(config)) - {BACKEND_FACTS}):
            if old.get(k) != config.get(k):
                parts.append(f"{k} {old.get(k)!r} -> {config.get(k)!r}")
    return ", ".join(dict.fromkeys(parts))
