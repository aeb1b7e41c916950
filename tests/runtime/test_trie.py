from parareason.runtime.trie import TokenTrie


def test_acquire_shares_common_prefix_and_splits_segments():
    trie = TokenTrie()
    a = trie.acquire([1, 2, 3, 4])
    b = trie.acquire([1, 2, 9])
    assert trie.path_ids(a) == [1, 2, 3, 4]
    assert trie.path_ids(b) == [1, 2, 9]
    # [1,2] is now one shared node with children [3,4] and [9]
    shared = a.parent
    assert shared is b.parent and shared.tokens == [1, 2]
    assert trie.stored_tokens() == 5
    assert a.end == 4 and b.end == 3 and shared.end == 2


def test_acquire_of_exact_prefix_references_the_split_point():
    trie = TokenTrie()
    a = trie.acquire([5, 6, 7])
    p = trie.acquire([5, 6])
    assert trie.path_ids(p) == [5, 6] and p.refs == 1 and a.parent is p
    # appending to p must not change a's path: p has a child, so a new node is made
    p2 = trie.append(p, [8])
    assert trie.path_ids(p2) == [5, 6, 8] and trie.path_ids(a) == [5, 6, 7]


def test_append_in_place_when_private_else_new_child():
    trie = TokenTrie()
    a = trie.acquire([1])
    a2 = trie.append(a, [2, 3])
    assert a2 is a and trie.path_ids(a) == [1, 2, 3]
    b = trie.fork(a)
    assert b is a and a.refs == 2
    a3 = trie.append(a, [4])
    b3 = trie.append(b, [5])
    assert a3 is not a and b3 is not a
    assert trie.path_ids(a3) == [1, 2, 3, 4] and trie.path_ids(b3) == [1, 2, 3, 5]
    assert a.refs == 0 and a3.refs == 1 and b3.refs == 1


def test_release_frees_unused_nodes_up_to_shared_ones():
    trie = TokenTrie()
    a = trie.acquire([1, 2, 3])
    b = trie.acquire([1, 2, 4])
    trie.release(a)
    assert trie.live_nodes() == 2  # [1,2] and [4]
    assert trie.path_ids(b) == [1, 2, 4]
    trie.release(b)
    assert trie.live_nodes() == 0 and trie.total_refs() == 0


def test_release_twice_raises():
    trie = TokenTrie()
    a = trie.acquire([1])
    trie.release(a)
    try:
        trie.release(a)
    except ValueError:
        return
    raise AssertionError("double release must raise")
