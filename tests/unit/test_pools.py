"""Process-wide thread pools: one per name, made once, and a forked child's are its own."""

from __future__ import annotations

import os

from m5stream._pools import process_pool


def test_a_pool_is_made_once_per_name_and_not_inherited_by_a_fork() -> None:
    a = process_pool("m5-test-a", 2)
    assert process_pool("m5-test-a", 5) is a and process_pool("m5-test-b", 1) is not a
    assert a.submit(lambda: 41 + 1).result(5) == 42
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parent's pool has no threads here: the child makes its own, which runs
        child = process_pool("m5-test-a", 2)
        ok = child is not a and child.submit(lambda: 7).result(5) == 7
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(r)
