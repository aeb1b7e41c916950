"""Recorded-trace file format (`parareason record` writes it, `replay` reads it).

One JSON object per line, one line per question, self-contained so that a replay
needs no model and no tokenizer files:

    {"format": "parareason-trace/1", "id", "prompt", "reference",
     "model", "tokenizer", "eos_token_ids": [...],
     "sampling": {"temperature", "top_p", "max_new_tokens", "top_logprobs", "seed", "n"},
     "contexts": [{"input_ids": [...], "traces": [
         {"token_ids", "logprobs", "top_logprobs" (or null), "finish_reason",
          "text", "answer", "t_first_token_s", "elapsed_s"}]}],
     "tokenizer_calls": {"chat": [[messages, add_generation_prompt, ids], ...],
                         "encode": [[text, ids], ...]},
     "pieces": {"<token id>": "<decoded text of that token>"},
     "config_fingerprint": "..."}

`contexts` groups samples by the exact context the protocol submitted (for the plain
protocol every sample of a question shares one context). `tokenizer_calls` are the
tokenizer results the runtime asked for while recording, so a replay of the same
protocol builds the same context ids; `pieces` decode generated tokens (exact for
byte-level BPE vocabularies; `text` keeps the model's own decode of each trace).

A file may be compressed (`.gz`, `.xz`: read transparently), and an alternative in
`top_logprobs` may be a bare logprob without its token id (compact.py writes such
files; the id reads as -1): the confidence policies read only the values.
"""
from __future__ import annotations

import gzip
import json
import lzma
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TRACE_FORMAT = "parareason-trace/1"


class TraceFileError(ValueError):
    pass


@dataclass
class RecordedTrace:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    top_logprobs: list[list[tuple[int, float]]] | None = None
    text: str = ""
    answer: str | None = None
    t_first_token_s: float | None = None
    elapsed_s: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecordedTrace":
        top = d.get("top_logprobs")
        if top is not None:
            top = [[(-1, float(a)) if isinstance(a, (int, float)) else (int(a[0]), float(a[1])) for a in pos]
                   for pos in top]
        return cls(token_ids=[int(t) for t in d["token_ids"]],
                   logprobs=[float(x) for x in d.get("logprobs") or []],
                   finish_reason=str(d.get("finish_reason") or "eos"), top_logprobs=top,
                   text=d.get("text", ""), answer=d.get("answer"),
                   t_first_token_s=d.get("t_first_token_s"), elapsed_s=d.get("elapsed_s"))


@dataclass
class RecordedContext:
    input_ids: list[int]
    traces: list[RecordedTrace] = field(default_factory=list)


@dataclass
class RecordedQuestion:
    id: str
    prompt: str
    reference: str | None
    model: str
    tokenizer: str
    eos_token_ids: list[int]
    sampling: dict[str, Any]
    contexts: list[RecordedContext]
    chat_calls: list[tuple[list[dict[str, str]], bool, list[int]]] = field(default_factory=list)
    encode_calls: list[tuple[str, list[int]]] = field(default_factory=list)
    pieces: dict[int, str] = field(default_factory=dict)
    # 0-based position in the recorded dataset: `record` batches several questions and
    # writes them as they finish, so file order is completion order, not dataset order.
    row: int | None = None

    @property
    def n_traces(self) -> int:
        return sum(len(c.traces) for c in self.contexts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRACE_FORMAT, "id": self.id, "prompt": self.prompt, "reference": self.reference,
            "model": self.model, "tokenizer": self.tokenizer, "eos_token_ids": list(self.eos_token_ids),
            "sampling": self.sampling,
            "contexts": [{"input_ids": c.input_ids, "traces": [asdict(t) for t in c.traces]}
                         for c in self.contexts],
            "tokenizer_calls": {"chat": [[m, g, ids] for m, g, ids in self.chat_calls],
                                "encode": [[s, ids] for s, ids in self.encode_calls]},
            "pieces": {str(k): v for k, v in sorted(self.pieces.items())},
            **({} if self.row is None else {"row": self.row}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecordedQuestion":
        calls = d.get("tokenizer_calls") or {}
        return cls(
            id=str(d["id"]), prompt=d["prompt"], reference=d.get("reference"),
            model=d.get("model", ""), tokenizer=d.get("tokenizer", ""),
            eos_token_ids=[int(t) for t in d.get("eos_token_ids", [])],
            sampling=dict(d.get("sampling") or {}),
            contexts=[RecordedContext(input_ids=[int(t) for t in c["input_ids"]],
                                      traces=[RecordedTrace.from_dict(t) for t in c["traces"]])
                      for c in d["contexts"]],
            chat_calls=[(m, bool(g), [int(t) for t in ids]) for m, g, ids in calls.get("chat", [])],
            encode_calls=[(s, [int(t) for t in ids]) for s, ids in calls.get("encode", [])],
            pieces={int(k): v for k, v in (d.get("pieces") or {}).items()},
            row=None if d.get("row") is None else int(d["row"]),
        )


def read_bytes(p: Path) -> bytes:
    """The file's bytes, decompressed for .gz / .xz (a truncated archive keeps what it has)."""
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(p.suffix)
    if opener is None:
        return p.read_bytes()
    chunks: list[bytes] = []
    try:
        with opener(p, "rb") as f:
            while chunk := f.read(1 << 20):
                chunks.append(chunk)
    except (EOFError, OSError, lzma.LZMAError) as e:
        if not chunks:
            raise TraceFileError(f"{p}: cannot decompress ({e})") from e
    return b"".join(chunks)


def load_trace_file(path: str | Path) -> list[RecordedQuestion]:
    """Read a trace file in dataset order (file order for lines without a row index);
    a partial last line (an interrupted `record`) is skipped."""
    p = Path(path)
    if not p.is_file():
        raise TraceFileError(f"{path}: no such trace file")
    data = read_bytes(p)
    if not data.strip():
        raise TraceFileError(f"{path}: empty trace file")
    complete = data[: data.rfind(b"\n") + 1] if not data.endswith(b"\n") else data
    out: list[RecordedQuestion] = []
    seen: set[str] = set()
    for lineno, line in enumerate(complete.decode("utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if d.get("format") != TRACE_FORMAT:
                raise TraceFileError(f"{path}:{lineno}: not a {TRACE_FORMAT} line "
                                     f"(format={d.get('format')!r}); was it written by `parareason record`?")
            q = RecordedQuestion.from_dict(d)
        except TraceFileError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TraceFileError(f"{path}:{lineno}: malformed trace line ({e})") from e
        if q.id in seen:
            continue
        seen.add(q.id)
        out.append(q)
    if not out:
        raise TraceFileError(f"{path}: no complete trace lines")
    order = {id(q): (i if q.row is None else q.row) for i, q in enumerate(out)}
    return sorted(out, key=lambda q: order[id(q)])
