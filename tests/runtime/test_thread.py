import pytest

from parareason.runtime.thread import IllegalTransition, Thread


class _Sample:
    id = "s0"


def _thread(parent=None):
    return Thread("t", _Sample(), parent, node=None, depth=0 if parent is None else parent.depth + 1, role="root")


def test_legal_lifecycle():
    t = _thread()
    assert t.status == "pending" and t.live
    t.set_status("running")
    t.set_status("waiting")
    t.set_status("pending")  # resumed after join
    t.set_status("running")
    t.set_status("finished", "eos")
    assert not t.live and t.reason == "eos"


@pytest.mark.parametrize("end", ["finished", "pruned", "cancelled", "failed", "limit"])
def test_no_transition_out_of_an_end_state(end):
    t = _thread()
    t.set_status("running")
    t.set_status(end, "x")
    for nxt in ["pending", "running", "waiting", "finished", "cancelled"]:
        with pytest.raises(IllegalTransition):
            t.set_status(nxt)


def test_pending_cannot_wait():
    with pytest.raises(IllegalTransition):
        _thread().set_status("waiting")


def test_descendants_and_children_links():
    root = _thread()
    a = _thread(root)
    b = _thread(root)
    c = _thread(a)
    assert root.children == [a, b]
    assert set(root.descendants()) == {a, b, c}
    assert c.depth == 2
