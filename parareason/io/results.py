"""Resumable JSONL result writer: append + flush + fsync, one line per finished prompt.

Crash safety: each result is written as one line ending in a newline and fsync'd
before the next is started, so after a kill at any moment the file holds complete
lines plus at most one partial last line (a write is always a prefix of the line).
`--resume` truncates that partial tail and reports which ids are already done, so
rerunning yields the same set of results: none lost, none duplicated. A row whose
`error` is set (a dead server, a prompt too long) is not done: resume drops it from the
file (rewritten atomically) and runs that prompt again. A last line that is a complete
result missing only its newline (a file edited by hand, another tool) is kept, not redone.

One result that cannot be serialised (a lone surrogate, an object JSON cannot hold)
never takes the others down: it is written as an error row (same id, prompt, policy,
protocol; `error` says why; ASCII-escaped so it always encodes), and the run goes on;
resume keeps such a row (writing it again would fail again). Non-finite floats are written
as null, so every line is standard JSON; the sidecar is written with allow_nan=False.

Each line carries `config_fingerprint` (a hash of the settings that change results),
so resuming with different settings is detected and refused unless forced. A sidecar
`<out>.config.json` maps fingerprints to the settings, to say *what* differs (and holds
the backend's facts: `settings_sidecar.py`).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from parareason.io.settings_sidecar import describe_difference, write_entry
from parareason.runtime.result import Result

FINGERPRINT_KEY = "config_fingerprint"
UNWRITABLE = "result could not be written"  # a deterministic failure: resume keeps such rows


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
    added_newline: bool = False  # the last line was complete but for its newline (kept)
    mismatched: list[str] = field(default_factory=list)  # ids written under another fingerprint
    other_fingerprints: set[str] = field(default_factory=set)
    retried: list[str] = field(default_factory=list)  # error rows dropped on resume, to run again


def scan_results(path: Path, fingerprint: str | None = None, *, repair: bool = False) -> ExistingResults:
    """Read complete lines of a results file; optionally truncate a partial last line."""
    data = path.read_bytes()
    found = ExistingResults()
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a partial write...
    if end < len(data) and _is_complete_row(data[end:]):
        found.added_newline = True  # ...unless they are a whole result: keep it
        if repair:
            with open(path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
        data += b"\n"
        end = len(data)
    elif end < len(data):
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


def check_writable(path: str | Path) -> None:
    """ResultFileError unless `path` (and its `.config.json` beside it) can be written;
    creates nothing (but a removed probe), so a refused run leaves no empty file or folder."""
    p = Path(path)
    if p.is_dir():
        raise ResultFileError(f"{p}: is a directory, expected a file path")
    if p.exists() and not os.access(p, os.W_OK):
        raise ResultFileError(f"{p}: cannot write (permission denied)")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:  # the folders mkdir would create
        folder = folder.parent
    if not folder.is_dir():
        raise ResultFileError(f"{p}: cannot create it, {folder} is a file, not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ResultFileError(f"{p}: cannot create files in {folder} (permission denied)")
    try:  # permission bits do not tell everything (root, /proc, a read-only mount): try it
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise ResultFileError(f"{p}: cannot create files in {folder} ({e.strerror or e})") from None


def _is_complete_row(tail: bytes) -> bool:
    """A prefix of a written line that parses as an object with an id is the whole line
    (json.dumps of an object ends with its closing brace), so it is safe to keep."""
    try:
        row = json.loads(tail)
    except ValueError:  # also UnicodeDecodeError: a write cut inside a character
        return False
    return isinstance(row, dict) and "id" in row


def _finite(v: Any) -> Any:
    """`v` with NaN / infinities replaced by None (JSON has no such numbers)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One result line as UTF-8; ValueError/TypeError (UnicodeEncodeError included) when
    the row cannot be written as valid JSON text."""
    try:
        text = json.dumps(row, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:  # a NaN or infinity somewhere: null is what JSON can say
        text = json.dumps(_finite(dict(row)), ensure_ascii=False, allow_nan=False, default=str)
    return (text + "\n").encode("utf-8")


def unwritable_row(row: Mapping[str, Any], error: Exception) -> dict[str, Any]:
    """The error row recorded instead of a result that cannot be written."""
    keep = ("id", "prompt", "policy", "protocol", "reference", FINGERPRINT_KEY)
    out: dict[str, Any] = {k: row.get(k) for k in keep if k in row}
    out.update(answer=None, correct=None, threads=[], usage={}, details={},
               latency_s=_finite(row.get("latency_s", 0.0)) or 0.0,
               error=f"{UNWRITABLE}: {type(error).__name__}: {error}")
    return out


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
        check_writable(self.path)
        has_data = self.path.exists() and self.path.stat().st_size > 0
        if has_data and not self.resume:
            raise ResultFileError(f"{self.path} already exists; pass --resume to continue it "
                                  "or choose another --out")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")
        except OSError as e:
            raise ResultFileError(f"{self.path}: cannot write ({e.strerror or e})") from None
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
            failed = {rid for rid, row in self.existing.rows.items()
                      if row.get("error") and not str(row["error"]).startswith(UNWRITABLE)}
            if failed:
                self._drop_rows(failed)
        self.write_settings()
        return self

    def _drop_rows(self, ids: set[str]) -> None:
        """Rewrite the file without the rows of `ids`. The kept lines go to a temp file,
        locked before it replaces the original, so a kill leaves one whole file."""
        kept = [line for line in self.path.read_bytes().split(b"\n")
                if line.strip() and str(json.loads(line)["id"]) not in ids]
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        new = open(tmp, "wb")
        new.write(b"".join(line + b"\n" for line in kept))
        new.flush()
        os.fsync(new.fileno())
        fcntl.flock(new.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self.path)
        self._file.close()
        self._file = new  # positioned at the end: appends follow the kept rows
        for rid in ids:
            del self.existing.rows[rid]
        self.existing.retried = sorted(ids)

    def _mismatch_message(self) -> str:
        n = len(self.existing.mismatched)
        msg = (f"{self.path}: {n} result(s) were produced with different settings "
               f"(fingerprint {', '.join(sorted(self.existing.other_fingerprints))}, now {self.fingerprint})")
        diff = self._describe_difference()
        if diff:
            msg += f"; differs in: {diff}"
        return msg + ". Use another --out, or --force to keep them and continue."

    def _describe_difference(self) -> str:
        return describe_difference(self.config_path, self.existing.other_fingerprints, self.config)

    def write_settings(self, facts: Mapping[str, Any] | None = None) -> None:
        """The sidecar entry of this run: its settings, plus the backend's facts once it loaded."""
        try:
            write_entry(self.config_path, self.fingerprint, self.config, facts)
        except ValueError as e:
            raise ResultFileError(f"{self.config_path}: settings hold a NaN or infinite number ({e})") from None

    @property
    def done_ids(self) -> set[str]:
        return set(self.existing.rows)

    def append(self, result: Result | Mapping[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("ResultWriter.append before open()")
        row = result.to_dict() if isinstance(result, Result) else dict(result)
        row[FINGERPRINT_KEY] = self.fingerprint
        try:
            data = encode_row(row)
        except (ValueError, TypeError) as e:  # one bad result must not end the run
            row = unwritable_row(row, e)
            # ASCII escapes keep the id exactly as it was (resume matches it), whatever it holds
            data = (json.dumps(row, ensure_ascii=True, allow_nan=False, default=str) + "\n").encode("ascii")
        self._file.write(data)
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
