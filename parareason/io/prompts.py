"""Prompt input: parse and validate a prompts file (or in-memory items) up front.

Two formats:
* JSONL: one object per line with `prompt` (or `question`), optional `id`, `answer`,
  and per-row overrides (`n`, `temperature`, `top_p`, `max_new_tokens`, `seed`,
  `budget`, `policy`, `protocol`). Other keys (e.g. a dataset's `solution`) are kept
  as metadata and otherwise ignored.
* Plain text: one prompt per non-blank line, ids `line-N` (N = 1-based line number).
  A `.jsonl`/`.json`/`.ndjson` file is JSONL, a `.txt` file is text; otherwise a file
  whose first non-blank line starts with "{" is JSONL.

Every problem is reported as `file:line: message` before any model is loaded, so a
typo in row 900 does not cost the first 899 generations.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

# override key -> (accepted python types, check, description)
_OVERRIDES: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "n": ((int,), lambda v: v >= 1, "an integer >= 1"),
    "max_new_tokens": ((int,), lambda v: v >= 1, "an integer >= 1"),
    "budget": ((int,), lambda v: v >= 1, "an integer >= 1"),
    "seed": ((int,), lambda v: True, "an integer"),
    "temperature": ((int, float), lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
    "top_p": ((int, float), lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "policy": ((str,), lambda v: bool(v.strip()), "a non-empty string"),
    "protocol": ((str,), lambda v: bool(v.strip()), "a non-empty string"),
}
OVERRIDE_KEYS = frozenset(_OVERRIDES)
_JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}


class PromptInputError(ValueError):
    """A malformed prompt input, located as `source:line`."""

    def __init__(self, source: str, line: int | None, message: str):
        self.source, self.line, self.message = source, line, message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass
class PromptRow:
    id: str
    prompt: str
    answer: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None  # where it came from (1-based), for messages


def load_prompts(path: str | Path) -> list[PromptRow]:
    """Read and validate a prompts file; raise PromptInputError on the first problem."""
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise PromptInputError(source, None, "no such file")
    if p.is_dir():
        raise PromptInputError(source, None, "is a directory, expected a prompts file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise PromptInputError(source, None, f"cannot read: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PromptInputError(source, line, "not valid UTF-8") from e
    # Split on "\n" only: str.splitlines() also breaks on U+2028, U+0085, ... which
    # occur inside JSON strings of real datasets (GSM8K train line 2382).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if not any(line.strip() for line in lines):
        raise PromptInputError(source, None, "empty file: no prompts")
    if _looks_like_jsonl(p, lines):
        return _parse_jsonl(source, lines)
    return _parse_text(lines)


def _looks_like_jsonl(p: Path, lines: list[str]) -> bool:
    if p.suffix.lower() in _JSON_SUFFIXES:
        return True
    if p.suffix.lower() == ".txt":  # explicit text: a prompt may start with "{"
        return False
    first = next(line for line in lines if line.strip())
    return first.lstrip().startswith("{")


def _parse_text(lines: list[str]) -> list[PromptRow]:
    return [PromptRow(id=f"line-{i}", prompt=line.strip(), line=i)
            for i, line in enumerate(lines, 1) if line.strip()]


def _parse_jsonl(source: str, lines: list[str]) -> list[PromptRow]:
    rows: list[PromptRow] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptInputError(source, lineno, f"invalid JSON ({e.msg} at column {e.colno})") from e
        row = validate_item(obj, source=source, line=lineno, default_id=f"line-{lineno}")
        _check_unique(row, seen, source)
        rows.append(row)
    return rows


def normalize_items(items: Iterable[str | Mapping[str, Any] | PromptRow], source: str = "prompts") -> list[PromptRow]:
    """The same validation for in-memory prompts (Python API): strings or dicts.

    Locations read `prompts:N` with N the 1-based position in the list.
    """
    rows: list[PromptRow] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items, 1):
        if isinstance(item, PromptRow):
            row = item
        elif isinstance(item, str):
            if not item.strip():
                raise PromptInputError(source, i, "empty prompt")
            bad = _lone_surrogate(item, "'prompt'")
            if bad is not None:
                raise PromptInputError(source, i, bad)
            row = PromptRow(id=f"prompt-{i}", prompt=item, line=i)
        else:
            row = validate_item(item, source=source, line=i, default_id=f"prompt-{i}")
        _check_unique(row, seen, source)
        rows.append(row)
    if not rows:
        raise PromptInputError(source, None, "no prompts given")
    return rows


def validate_item(obj: Any, *, source: str, line: int, default_id: str) -> PromptRow:
    def fail(msg: str) -> PromptInputError:
        return PromptInputError(source, line, msg)

    if not isinstance(obj, Mapping):
        raise fail(f"expected a JSON object, got {_json_type(obj)}")
    bad = _lone_surrogate(obj)
    if bad is not None:
        raise fail(bad)
    if "prompt" in obj and "question" in obj:
        raise fail("has both 'prompt' and 'question'; give one")
    key = "prompt" if "prompt" in obj else "question"
    if key not in obj:
        raise fail("missing 'prompt' (or 'question')")
    prompt = obj[key]
    if not isinstance(prompt, str):
        raise fail(f"'{key}' must be a string, got {_json_type(prompt)}")
    if not prompt.strip():
        raise fail(f"'{key}' is empty")

    rid = obj.get("id", default_id)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise fail(f"'id' must be a string or integer, got {_json_type(rid)}")
    rid = str(rid)
    if not rid.strip():
        raise fail("'id' is empty")

    answer = obj.get("answer")
    if answer is not None:
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise fail(f"'answer' must be a string or number, got {_json_type(answer)}")
        answer = str(answer)

    overrides: dict[str, Any] = {}
    for k, (types, ok, desc) in _OVERRIDES.items():
        if k not in obj or obj[k] is None:
            continue
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, types) or not ok(v):
            raise fail(f"'{k}' must be {desc}, got {json.dumps(v)}")
        overrides[k] = v
    meta = {k: v for k, v in obj.items() if k not in OVERRIDE_KEYS and k not in ("id", key, "answer")}
    return PromptRow(id=rid, prompt=prompt, answer=answer, overrides=overrides, meta=meta, line=line)


def _lone_surrogate(v: Any, where: str = "") -> str | None:
    """Where a string (any field, key or nested value) holds a lone surrogate such as the
    JSON escape "\\ud800": Python accepts it, but no UTF-8 file can hold it, so the
    result line could never be written. None when every string is valid Unicode."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            return (f"{where} holds a lone surrogate (U+{ord(v[e.start]):04X} at character {e.start + 1}), "
                    "which is not valid Unicode and could not be written to a results file")
        return None
    if isinstance(v, Mapping):
        for k, x in v.items():
            path = f"{where[1:-1]}.{k}" if where else str(k)
            found = (_lone_surrogate(k, f"a key of {where or 'the row'}") if isinstance(k, str) else None) \
                or _lone_surrogate(x, f"'{path}'")
            if found:
                return found
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            found = _lone_surrogate(x, f"'{where[1:-1]}[{i}]'")
            if found:
                return found
    return None


def _check_unique(row: PromptRow, seen: dict[str, int], source: str) -> None:
    if row.id in seen:
        raise PromptInputError(source, row.line, f"duplicate id {row.id!r} (first seen on line {seen[row.id]})")
    seen[row.id] = row.line or 0


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "array"
    if isinstance(v, Mapping):
        return "object"
    return type(v).__name__
