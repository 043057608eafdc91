import gc
import weakref

import pytest

from session.heap import freeze_startup_heap


@pytest.fixture
def unfrozen_after():
    yield
    gc.unfreeze()


class Node:
    def __init__(self):
        self.other: Node | None = None


def test_the_startup_heap_is_frozen_and_later_cycles_are_still_collected(unfrozen_after):
    kept = Node()
    frozen = freeze_startup_heap()
    # Frozen objects are still freed by reference counting, and other threads of the test
    # process (earlier tests' executors) may drop a few between the two reads: the count
    # can only have fallen, and by next to nothing.
    now = gc.get_freeze_count()
    assert 0 < now <= frozen
    assert frozen - now < 100
    assert not any(o is kept for o in gc.get_objects())  # out of every collection

    # A session's objects (made after start-up) still have their cycles collected.
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
