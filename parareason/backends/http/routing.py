"""Prefix-affinity routing over several servers (SGLang workers, vLLM servers).

All threads of one reasoning request share a long token prefix, and that prefix
is cached (RadixAttention) only on the worker that computed it. So sequences
with the same `affinity_key` go to the same worker: the key is placed with
rendezvous (highest-random-weight) hashing, which is stable across processes and
moves only the keys of a worker that dies (each to its next-ranked worker).
Assignments are sticky: once a key lives on a worker it stays there while that
worker is up, even if its first choice comes back.

With one URL (a single server or an sglang-router front) routing is trivial;
the router does its own cache-aware placement.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable


def _score(key: str, url: str) -> int:
    # hashlib, not hash(): Python's str hash is salted per process.
    return int.from_bytes(hashlib.blake2b(f"{url}\x00{key}".encode(), digest_size=8).digest(), "big")


@dataclass
class WorkerState:
    url: str
    dead_until: float = 0.0  # monotonic time before which the worker is skipped
    consecutive_failures: int = 0


class WorkerPool:
    """Health-aware, sticky rendezvous hashing. Used from one thread only."""

    def __init__(
        self,
        urls: Iterable[str],
        dead_cooldown_s: float = 5.0,
        max_sticky_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = {u: WorkerState(u) for u in urls}
        if not self.workers:
            raise ValueError("WorkerPool needs at least one URL")
        self.dead_cooldown_s = dead_cooldown_s
        self._sticky: OrderedDict[str, str] = OrderedDict()
        self._max_sticky = max_sticky_keys
        self._clock = clock

    @property
    def urls(self) -> list[str]:
        return list(self.workers)

    def ranked(self, key: str) -> list[str]:
        """Every worker, best first for this key (independent of health)."""
        return sorted(self.workers, key=lambda u: _score(key, u), reverse=True)

    def is_alive(self, url: str) -> bool:
        return self.workers[url].dead_until <= self._clock()

    def pick(self, key: str, exclude: Iterable[str] = ()) -> str:
        """The worker for `key`: its sticky worker if alive, else the best alive one.

        If every candidate is marked dead, the best non-excluded one is returned
        anyway: trying is better than refusing while a worker may be back.
        """
        excluded = set(exclude)
        sticky = self._sticky.get(key)
        if sticky is not None and sticky not in excluded and self.is_alive(sticky):
            self._sticky.move_to_end(key)
            return sticky
        candidates = [u for u in self.ranked(key) if u not in excluded] or self.ranked(key)
        alive = [u for u in candidates if self.is_alive(u)]
        chosen = (alive or candidates)[0]
        self._sticky[key] = chosen
        self._sticky.move_to_end(key)
        while len(self._sticky) > self._max_sticky:
            self._sticky.popitem(last=False)
        return chosen

    def mark_dead(self, url: str) -> None:
        w = self.workers[url]
        w.consecutive_failures += 1
        # Back off longer for a worker that keeps failing (capped at 8x).
        w.dead_until = self._clock() + self.dead_cooldown_s * min(8, 2 ** (w.consecutive_failures - 1))

    def mark_alive(self, url: str) -> None:
        w = self.workers[url]
        w.consecutive_failures = 0
        w.dead_until = 0.0
