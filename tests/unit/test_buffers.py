"""The pool of receive buffers: reused only once no view of them is left, bounded, per process."""

from __future__ import annotations

import pyarrow as pa

from m5stream.storage.buffers import BufferPool, range_buffers
from tests.helpers import in_forked_child


def test_a_buffer_is_reused_once_no_view_is_left() -> None:
    pool = BufferPool(limit=8 << 20)
    a = pool.take(3_000_000)
    assert len(a) == 3 << 20  # whole MiB
    whole = memoryview(a)
    whole[:5] = b"hello"
    held = pa.py_buffer(whole[1:4])  # a decoder's zero-copy slice
    whole.release()
    assert pool.give(a) is False  # still viewed: waits
    assert pool.take(3_000_000) is not a  # not handed out while viewed
    assert bytes(held) == b"ell"  # and not overwritten
    del held
    got = pool.take(2_500_000)  # checked again: now free, the smallest that fits
    assert got is a and bytes(got[:5]) == b"hello"  # the same pages: not zeroed again
    assert pool.give(got) is True and pool.free_bytes == 3 << 20


def test_take_picks_a_fitting_buffer_and_the_pool_is_bounded() -> None:
    mib = 1 << 20
    pool = BufferPool(limit=5 * mib)
    one, four = pool.take(mib), pool.take(4 * mib)
    assert pool.give(one) and pool.give(four) and pool.free_bytes == 5 * mib
    assert pool.take(100) is one  # the smallest that fits
    assert pool.take(100) is not four  # more than twice the need: a new buffer instead
    assert pool.give(one) and pool.free_bytes == 5 * mib
    two = BufferPool().take(2 * mib)
    assert pool.give(two)  # 7 MiB free is over the limit: the oldest (four) is dropped
    assert pool.free_bytes == 3 * mib
    assert pool.take(3 * mib) not in (one, two, four)
    pool.clear()
    assert pool.free_bytes == 0


def test_the_pool_is_per_process() -> None:
    parent = range_buffers()
    # the child gets a pool of its own (the parent's lock may be held across the fork)
    assert in_forked_child(lambda: range_buffers() is not parent) == b"1"
