"""Resumable JSONL result writer: append + flush + fsync, one line per finished prompt.

Crash safety: each result is written as one line ending in a newline and fsync'd
before the next is started, so after a kill at any moment the file holds complete
lines plus at most one partial last line (a write is always a prefix of the line).
`--resume` truncates that partial tail and reports which ids are already done, so
rerunning yields the same set of results: none lost, none duplicated.

Each line carries `config_fingerprint` (a hash of the settings that change results),
so resuming with different settings is detected and refused unless forced. A sidecar
`<out>.config.json` maps fingerprints to the settings, to say *what* differs.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from parareason.runtime.result import Result

FINGERPRINT_KEY = "config_fingerprint"


class ResultFileError(ValueError):
    """The output file cannot be used as asked (exists, corrupt, other config, locked)."""


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """Stable short hash of a settings dict (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class ExistingResults:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> row, first occurrence
    repaired_bytes: int = 0  # size of the partial last line that was cut off
    mismatched: list[str] = field(default_factory=list)  # ids written under another fingerprint
    other_fingerprints: set[str] = field(default_factory=set)


def scan_results(path: Path, fingerprint: str | None = None, *, repair: bool = False) -> ExistingResults:
    """Read complete lines of a results file; optionally truncate a partial last line."""
    data = path.read_bytes()
    found = ExistingResults()
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a partial write
    if end < len(data):
        found.repaired_bytes = len(data) - end
        if repair:
            with open(path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
    for lineno, line in enumerate(data[:end].split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ResultFileError(f"{path}:{lineno}: corrupt result line ({e.msg}); "
                                  "fix or remove it before resuming") from e
        if not isinstance(row, dict) or "id" not in row:
            raise ResultFileError(f"{path}:{lineno}: not a result object (no 'id')")
        rid = str(row["id"])
        if rid in found.rows:
            continue
        found.rows[rid] = row
        fp = row.get(FINGERPRINT_KEY)
        if fingerprint is not None and fp != fingerprint:
            found.mismatched.append(rid)
            found.other_fingerprints.add(str(fp))
    return found


class ResultWriter:
    """Append results to a JSONL file; see the module docstring for the guarantees."""

    def __init__(self, path: str | Path, config: Mapping[str, Any], *, resume: bool = False,
                 force: bool = False):
        self.path = Path(path)
        self.config = dict(config)
        self.fingerprint = config_fingerprint(self.config)
        self.resume = resume
        self.force = force
        self.existing = ExistingResults()
        self._file = None

    @property
    def config_path(self) -> Path:
        return self.path.with_name(self.path.name + ".config.json")

    def open(self) -> "ResultWriter":
        """Check the file, repair a partial tail when resuming, take an exclusive lock."""
        has_data = self.path.exists() and self.path.stat().st_size > 0
        if has_data and not self.resume:
            raise ResultFileError(f"{self.path} already exists; pass --resume to continue it "
                                  "or choose another --out")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            self._file.close()
            self._file = None
            raise ResultFileError(f"{self.path} is being written by another process") from e
        if has_data:
            self.existing = scan_results(self.path, self.fingerprint, repair=False)
            if self.existing.mismatched and not self.force:
                self.close()
                raise ResultFileError(self._mismatch_message())
            # Only now cut the partial line: a refused resume leaves the file untouched.
            self.existing = scan_results(self.path, self.fingerprint, repair=True)
        self._write_config_sidecar()
        return self

    def _mismatch_message(self) -> str:
        n = len(self.existing.mismatched)
        msg = (f"{self.path}: {n} result(s) were produced with different settings "
               f"(fingerprint {', '.join(sorted(self.existing.other_fingerprints))}, now {self.fingerprint})")
        diff = self._describe_difference()
        if diff:
            msg += f"; differs in: {diff}"
        return msg + ". Use another --out, or --force to keep them and continue."

    def _describe_difference(self) -> str:
        try:
            known = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return ""
        parts = []
        for fp in sorted(self.existing.other_fingerprints):
            old = known.get(fp)
            if not isinstance(old, dict):
                continue
            for k in sorted(set(old) | set(self.config)):
                if old.get(k) != self.config.get(k):
                    parts.append(f"{k} {old.get(k)!r} -> {self.config.get(k)!r}")
        return ", ".join(dict.fromkeys(parts))

    def _write_config_sidecar(self) -> None:
        try:
            known = json.loads(self.config_path.read_text())
            if not isinstance(known, dict):
                known = {}
        except (OSError, ValueError):
            known = {}
        known[self.fingerprint] = self.config
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True, default=str))
        os.replace(tmp, self.config_path)

    @property
    def done_ids(self) -> set[str]:
        return set(self.existing.rows)

    def append(self, result: Result | Mapping[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("ResultWriter.append before open()")
        row = result.to_dict() if isinstance(result, Result) else dict(result)
        row[FINGERPRINT_KEY] = self.fingerprint
        line = json.dumps(row, ensure_ascii=False, default=str) + "\n"
        self._file.write(line.encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.existing.rows[str(row["id"])] = row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None

    def __enter__(self) -> "ResultWriter":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
