"""A benchmark's finished policy runs, one JSON line each, so a long benchmark resumes.

A live comparison of several policies on 32 questions runs for hours on a CPU. Each
policy's summary (counts, tokens, wall time) is appended to `<results>.runs.jsonl` the
moment that policy finishes, next to its Results in the results file. `--resume` reads
the log back and skips every policy already there under the same benchmark settings;
a policy cut off mid-run is simply run again (its partial Results were never written,
since a policy's Results are written together after it ends).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from parareason.bench.policy_runs import PolicyRun


def log_path(results_path: Path) -> Path:
    return results_path.with_name(results_path.name + ".runs.jsonl")


class RunLog:
    """Append-only log of finished runs under one benchmark `config` (a JSON-able dict)."""

    def __init__(self, results_path: Path, config: dict[str, Any]):
        self.path = log_path(results_path)
        self.config = config

    def finished(self) -> dict[str, PolicyRun]:
        """Runs logged earlier under the same config, by policy name (the last one wins)."""
        if not self.path.exists():
            return {}
        done: dict[str, PolicyRun] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write: that run is simply redone
            if entry.get("config") == self.config:
                run = entry["run"]
                done[run["policy"]] = PolicyRun(**run)
        return done

    def add(self, run: PolicyRun) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"config": self.config, "run": asdict(run)}, default=str) + "\n")
            f.flush()


def keep_results_of(results_path: Path, policies: set[str]) -> None:
    """Drop Result lines of policies not in `policies` (a run killed after writing its
    Results but before logging its summary is redone, and must not leave them twice)."""
    if not results_path.exists():
        return
    kept = []
    for line in results_path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("policy") in policies:
                kept.append(line + "\n")
        except json.JSONDecodeError:
            continue  # torn by a kill
    tmp = results_path.with_name(results_path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, results_path)
