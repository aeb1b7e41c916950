"""What the stand-in reports as `cached_tokens`: a record of every sequence it has seen."""
from __future__ import annotations


class RadixRecord:
    """Token-id trie of every sequence the server has seen (what SGLang would cache)."""

    def __init__(self) -> None:
        self.root: dict[int, dict] = {}

    def match(self, ids: list[int]) -> int:
        node, n = self.root, 0
        for t in ids:
            node = node.get(t)
            if node is None:
                break
            n += 1
        return n

    def insert(self, ids: list[int]) -> None:
        node = self.root
        for t in ids:
            node = node.setdefault(t, {})

    def clear(self) -> None:
        self.root = {}
