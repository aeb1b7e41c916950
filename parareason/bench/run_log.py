"""A benchmark's finished policy runs, one JSON line each, so a long benchmark resumes.

A live comparison of several policies on 32 questions runs for hours on a CPU. When a
policy finishes, its Results go to the results file and a line with its settings and
wall time to `<results>.runs.jsonl`. `--resume` keeps every policy logged there under
the same benchmark settings whose Results are all in the results file, and recounts
them from those Results (one source of truth for accuracy and tokens); a policy cut off
mid-run is run again, and any Results it left are dropped first.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parareason.bench.policy_runs import PolicyRun, result_counts


@dataclass(frozen=True)
class LoggedRun:
    policy: str
    settings: dict[str, Any] | str
    wall_s: float


def log_path(results_path: Path) -> Path:
    return results_path.with_name(results_path.name + ".runs.jsonl")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """The file's JSON objects; a line torn by a kill mid-write is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class RunLog:
    """Append-only log of finished runs under one benchmark `config` (a JSON-able dict)."""

    def __init__(self, results_path: Path, config: dict[str, Any]):
        self.path = log_path(results_path)
        self.config = config

    def finished(self) -> dict[str, LoggedRun]:
        """Runs logged earlier under the same config, by policy name (the last one wins)."""
        return {e["run"]["policy"]: LoggedRun(e["run"]["policy"], e["run"]["settings"], float(e["run"]["wall_s"]))
                for e in _json_lines(self.path) if e.get("config") == self.config}

    def add(self, run: PolicyRun) -> None:
        entry = {"config": self.config, "run": {"policy": run.policy, "settings": run.settings, "wall_s": run.wall_s}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()


def resume_runs(log: RunLog, results_path: Path, settings_of: dict[str, Any], questions: int) -> dict[str, PolicyRun]:
    """The runs `--resume` keeps: logged under the same config, with the same settings,
    and all `questions` Results present, recounted from those Results. The results file
    is rewritten to hold only theirs: a run killed after writing its Results but before
    logging its summary is redone, and must not leave them twice."""
    from parareason.runtime.result import Result

    lines = _json_lines(results_path)
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for d in lines:
        by_policy.setdefault(d.get("policy", ""), []).append(d)
    kept = {}
    for name, run in log.finished().items():
        if run.settings == settings_of.get(name) and len(by_policy.get(name, ())) == questions:
            results = [Result.from_dict(d) for d in by_policy[name]]
            kept[name] = PolicyRun(policy=name, settings=run.settings, wall_s=run.wall_s, results=results,
                                   **result_counts(results))
    if results_path.exists():
        tmp = results_path.with_name(results_path.name + ".tmp")
        tmp.write_text("".join(json.dumps(d) + "\n" for d in lines if d.get("policy") in kept), encoding="utf-8")
        os.replace(tmp, results_path)
    return kept
