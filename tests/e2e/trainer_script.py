"""A tiny trainer run as a separate process by test_lifetime.py.

usage: python -m tests.e2e.trainer_script MODE DATASET_PATTERN
MODE close: one batch, report, close() on a line from stdin, report, wait for EOF.
MODE exception: a worker raises; the exception is left uncaught.
MODE forever: iterate slowly until killed.
"""

from __future__ import annotations

import sys

import m5stream as m5
from tests.e2e import fns


def main() -> None:
    mode, pattern = sys.argv[1], sys.argv[2]
    ds = m5.dataset(pattern)
    if mode == "close":
        # the worker processes are what this mode checks (untransformed tar would be read by
        # threads in this process, the block path)
        lo = m5.Loader(ds, 4, num_workers=2, output="numpy", columnar_reads="workers")
        batch = next(iter(lo))
        print("pids", *lo.worker_pids, flush=True)
        sys.stdin.readline()
        del batch
        lo.close()
        print("closed", flush=True)
        sys.stdin.read()
    elif mode == "exception":
        lo = m5.Loader(ds, 4, num_workers=2, transform=fns.FailOn(6), output="numpy")
        it = iter(lo)
        next(it)
        print("pids", *lo.worker_pids, flush=True)
        for _ in it:
            pass
    elif mode == "forever":
        lo = m5.Loader(ds, 2, num_workers=2, transform=fns.Slow(0.05), output="numpy")
        it = iter(lo)
        batch = next(it)
        print("pids", *lo.worker_pids, flush=True)
        while True:
            for batch in lo:  # noqa: B007 - hold a leased slot like a real trainer
                pass


if __name__ == "__main__":
    main()
