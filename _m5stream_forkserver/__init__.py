"""The first module m5stream's worker forkserver imports: one compute thread per worker process.

m5stream's workers are its parallelism, one process per core it is given, so a numeric library
inside a worker must not start a thread per core of its own: on a 96-core node, 8 workers would
each start a 96-thread OpenBLAS pool (and torch as many intra-op threads), which oversubscribes
the cores and costs CPU at start-up, when the trainer makes the first batches on the same
cores. torch's ``DataLoader`` sets one torch thread per worker for the same reason.

These libraries read their thread count from the environment once, when they load, so it has
to be set before numpy is imported, and this is the one place that runs first in the
forkserver: ``m5stream``'s own package imports numpy at once. A top-level package of its own,
therefore, named first in the forkserver's preload (``m5stream.workers.launch``). Only the
forkserver and the workers forked from it get these values; the trainer's environment is left
as it is, and a value the user has set is kept.
"""

from __future__ import annotations

import os

__all__ = ["WORKER_THREAD_ENV"]

#: environment variables that size the thread pools of OpenMP (torch), OpenBLAS (numpy) and MKL
WORKER_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

for _name in WORKER_THREAD_ENV:
    os.environ.setdefault(_name, "1")
