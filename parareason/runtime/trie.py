"""Token trie: the one store of every thread's context.

Each node holds a segment of token ids; a thread's context is exactly the path from
the root to its *tail* node. Siblings share their parent's ids, so a backend can
reuse prefix KV (embedded engine) or hit its radix cache (SGLang).

* `acquire(ids)` finds or creates the path spelling `ids` (splitting a segment at
  the point where it diverges) and takes a reference on its tail: contexts that
  start alike (the same system prompt, the same question) share nodes.
* `fork(node)` gives a second thread the same tail (a branch point).
* `append(node, ids)` extends a tail: in place when the node is private (one
  reference, no children), else as a new child node, so nobody else's path changes.
* `release(node)` drops a reference; nodes that no live thread uses are freed at
  once, so after a request ends only the root is left.
"""
from __future__ import annotations

from typing import Iterator, Sequence


class TrieNode:
    __slots__ = ("id", "tokens", "parent", "children", "refs", "end")

    def __init__(self, node_id: int, tokens: list[int], parent: "TrieNode | None") -> None:
        self.id = node_id
        self.tokens = tokens
        self.parent = parent
        self.children: list[TrieNode] = []
        self.refs = 0  # threads whose tail is this node
        self.end = (parent.end if parent else 0) + len(tokens)  # context length at this node's end

    @property
    def start(self) -> int:
        return self.end - len(self.tokens)

    def __repr__(self) -> str:
        return f"TrieNode(id={self.id}, len={len(self.tokens)}, refs={self.refs}, children={len(self.children)})"


class TokenTrie:
    def __init__(self) -> None:
        self._next_id = 0
        self.root = self._new_node([], None)
        self.nodes_created = 1

    def _new_node(self, tokens: list[int], parent: TrieNode | None) -> TrieNode:
        node = TrieNode(self._next_id, tokens, parent)
        self._next_id += 1
        if parent is not None:
            parent.children.append(node)
        return node

    # -- building paths ------------------------------------------------------------
    def acquire(self, ids: Sequence[int]) -> TrieNode:
        """Take a reference on the node whose path spells exactly `ids`."""
        node, i, n = self.root, 0, len(ids)
        while i < n:
            child = next((c for c in node.children if c.tokens and c.tokens[0] == ids[i]), None)
            if child is None:
                break
            seg = child.tokens
            common = 0
            limit = min(len(seg), n - i)
            while common < limit and seg[common] == ids[i + common]:
                common += 1
            if common < len(seg):
                child = self._split(child, common)
            node, i = child, i + common
        if i < n:
            node = self._new_node(list(ids[i:]), node)
            self.nodes_created += 1
        node.refs += 1
        return node

    def fork(self, node: TrieNode) -> TrieNode:
        """A second reference on `node` (a new thread branching here)."""
        node.refs += 1
        return node

    def append(self, node: TrieNode, ids: Sequence[int]) -> TrieNode:
        """Extend the path of one thread whose tail is `node`; returns its new tail.

        The caller's reference moves to the returned node."""
        if not ids:
            return node
        if node.refs == 1 and not node.children and node is not self.root:
            node.tokens.extend(ids)
            node.end += len(ids)
            return node
        child = self._new_node(list(ids), node)
        self.nodes_created += 1
        child.refs = 1
        node.refs -= 1
        return child

    def release(self, node: TrieNode) -> None:
        """Drop one reference; free every node no live thread uses any more."""
        if node.refs <= 0:
            raise ValueError(f"release of unreferenced {node!r}")
        node.refs -= 1
        while node is not self.root and node.refs == 0 and not node.children:
            parent = node.parent
            assert parent is not None
            parent.children.remove(node)
            node.parent = None
            node = parent

    def _split(self, node: TrieNode, at: int) -> TrieNode:
        """Cut `node` after `at` tokens; returns the new upper half (node keeps its refs)."""
        parent = node.parent
        assert parent is not None and 0 < at < len(node.tokens)
        upper = TrieNode(self._next_id, node.tokens[:at], parent)
        self._next_id += 1
        self.nodes_created += 1
        parent.children[parent.children.index(node)] = upper
        upper.children.append(node)
        node.tokens = node.tokens[at:]
        node.parent = upper
        return upper

    # -- reading -----------------------------------------------------------------------
    def path_ids(self, node: TrieNode) -> list[int]:
        """The full context whose tail is `node`."""
        segments = []
        while node is not None:
            segments.append(node.tokens)
            node = node.parent  # type: ignore[assignment]
        out: list[int] = []
        for seg in reversed(segments):
            out.extend(seg)
        return out

    def iter_nodes(self) -> Iterator[TrieNode]:
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children)

    def live_nodes(self) -> int:
        """Nodes other than the root (all of them are used by some live thread)."""
        return sum(1 for _ in self.iter_nodes()) - 1

    def total_refs(self) -> int:
        return sum(n.refs for n in self.iter_nodes())

    def stored_tokens(self) -> int:
        return sum(len(n.tokens) for n in self.iter_nodes())
