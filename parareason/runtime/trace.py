"""Event trace of a request: every submit, spawn, join, extend, prune, cancel, finish,
limit and policy event, with a timestamp and token counts.

Events are plain dicts so they go straight to JSONL and into `Result.trace`. The
key `t` (seconds since the request was added) is the only non-deterministic field:
`without_times` drops it so two runs with the same seed and script compare equal.
`max_events` bounds a request's trace (its memory and its file): once that many are
recorded, `full` turns true and the request ends at the limit `max_trace_events`.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable

TraceSink = Callable[[dict[str, Any]], None]
log = logging.getLogger(__name__)


class Trace:
    """Collects one request's events and forwards each to an optional sink."""

    def __init__(self, request_id: str, *, keep: bool = True, sink: TraceSink | None = None,
                 max_events: int | None = None) -> None:
        self.request_id = request_id
        self.keep = keep
        self.sink = sink
        self.max_events = max_events
        self.events: list[dict[str, Any]] = []
        self.recorded = 0  # events kept or sent to the sink
        self._t0 = time.monotonic()

    @property
    def full(self) -> bool:
        return self.max_events is not None and self.recorded >= self.max_events

    def emit(self, ev: str, **data: Any) -> None:
        if not self.keep and self.sink is None:
            return
        self.recorded += 1
        event = {"t": round(time.monotonic() - self._t0, 6), "req": self.request_id, "ev": ev, **data}
        if self.keep:
            self.events.append(event)
        if self.sink is not None:
            try:
                self.sink(event)
            except Exception:  # noqa: BLE001 - a broken sink must not stop decoding; it is logged and dropped
                log.exception("trace sink failed; no more events go to it for request %s", self.request_id)
                self.sink = None


def without_times(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with timestamps removed (for determinism checks)."""
    return [{k: v for k, v in e.items() if k != "t"} for e in events]


class JsonlTraceWriter:
    """A trace sink writing one JSON object per line; use as `trace_sink=writer`."""

    def __init__(self, path: str | Path | IO[str]) -> None:
        if isinstance(path, (str, Path)):
            self._f: IO[str] = open(path, "a", encoding="utf-8")
            self._owned = True
        else:
            self._f, self._owned = path, False

    def __call__(self, event: dict[str, Any]) -> None:
        self._f.write(json.dumps(event, default=str) + "\n")

    def close(self) -> None:
        self._f.flush()
        if self._owned:
            self._f.close()

    def __enter__(self) -> "JsonlTraceWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
