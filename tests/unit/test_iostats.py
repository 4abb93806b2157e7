"""S3 I/O counters: per thread, deltas leave zeros out, io_changes moves with every count."""

from __future__ import annotations

import threading

from m5stream.storage.iostats import (
    count_bytes,
    count_request,
    io_changes,
    io_counters,
    io_delta,
)


def test_counts_deltas_and_changes() -> None:
    before, mark = io_counters(), io_changes()
    count_request("GetObject")
    count_request("GetObject")
    count_request("HeadObject")
    count_bytes(1000)
    assert io_delta(before) == {"GetObject": 2, "HeadObject": 1, "bytes": 1000}
    assert io_changes() != mark
    same, mark = io_counters(), io_changes()
    assert io_delta(same) == {} and io_changes() == mark  # nothing requested since


def test_counters_are_per_thread() -> None:
    before = io_counters()
    seen: dict[str, int] = {}

    def other() -> None:
        count_request("GetObject")
        seen.update(io_counters())

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen.get("GetObject", 0) >= 1
    assert io_delta(before) == {}  # the other thread's request is not this thread's
