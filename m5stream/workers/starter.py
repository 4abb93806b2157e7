"""Worker processes and their slot ring, started by a daemon thread while the trainer works.

A :class:`~m5stream.Loader` with workers starts them when it is made (the processes executor
asks for a :class:`PoolStarter` then), not at its first batch: the forkserver, the workers'
start-up and the ring's memory overlap with whatever the trainer does next, and with the first
batches the trainer may make itself (:mod:`m5stream.execution.processes`).

The thread spawns the pool while the ring is made beside it. The ring waits - at most
``SIZE_WAIT`` seconds, and only when the trainer said it will make the first batches - for
:meth:`PoolStarter.size_hint`: the bytes one of those batches took, so the ring's slots fit a
batch from the start (a ring of the default slot size would carry the workers' first batches
through the pipe and then grow). The hint starts the ring at once, in a thread of its own, so
its memory is zeroed while the forkserver starts rather than after (with ``posix_fallocate``,
not by mapping it populated: that would hold the trainer's mmap lock, and stall every page
fault of the trainer's own batches, for the whole ring). :meth:`PoolStarter.get` hands both
over to the trainer's thread, which alone uses them from then on. A failure to start becomes
:class:`WorkerDied`, raised by ``get``. The threads are daemons: an interpreter that exits
during start-up is not held back by them, and the workers die with the trainer
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import M5Error, WorkerDied
from .pool import WorkerPool
from .slots import RingManager

__all__ = ["PoolStarter"]

log = logging.getLogger("m5stream")


class PoolStarter:
    """Starts ``make_pool()`` and a ring of ``num_slots`` slots (see module docstring)."""

    #: longest wait for the size of the trainer's first batch before making the ring
    SIZE_WAIT = 2.0

    def __init__(
        self,
        make_pool: Callable[[], WorkerPool],
        num_slots: int,
        slot_bytes: int,
        *,
        wait_for_size: bool,
    ) -> None:
        self._make_pool = make_pool
        self._num_slots = num_slots
        self._slot_bytes = slot_bytes
        self._hint = 0
        self._sized = threading.Event()
        if not wait_for_size:
            self._sized.set()
        self._done = threading.Event()
        self._ring_lock = threading.Lock()
        self._ring_thread: threading.Thread | None = None
        self._rings: RingManager | None = None
        self._ring_error: BaseException | None = None
        self._result: tuple[WorkerPool, RingManager] | None = None
        self._error: BaseException | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._run, name="m5stream-start", daemon=True)
        self._thread.start()

    def size_hint(self, nbytes: int) -> None:
        """A batch took ``nbytes`` of slot space: size the ring for it (if not made yet)."""
        self._hint = max(self._hint, nbytes)
        self._sized.set()
        self._start_ring()

    def _start_ring(self) -> threading.Thread:
        """The thread making the ring (started by the first caller)."""
        with self._ring_lock:
            if self._ring_thread is None:
                self._ring_thread = threading.Thread(
                    target=self._make_ring, name="m5stream-ring", daemon=True
                )
                self._ring_thread.start()
            return self._ring_thread

    def _make_ring(self) -> None:
        try:
            # no pool to tell yet: the ring is handed to it once both exist (attach)
            slot_bytes = max(self._slot_bytes, self._hint)
            self._rings = RingManager(self._num_slots, slot_bytes, None)
        except BaseException as exc:  # handed to the trainer by get()
            self._ring_error = exc

    def _run(self) -> None:
        pool: WorkerPool | None = None
        try:
            pool = self._make_pool()
            self._sized.wait(self.SIZE_WAIT)
            self._start_ring().join()
            if self._ring_error is not None:
                raise self._ring_error
            assert self._rings is not None
            self._rings.attach(pool.send_ring)
            self._result = (pool, self._rings)
        except BaseException as exc:  # handed to the trainer by get()
            if pool is not None:
                pool.shutdown(0.1)
            if self._rings is not None:
                self._rings.close()
            self._error = exc
        finally:
            self._done.set()

    def done(self) -> bool:
        """Whether :meth:`get` returns without waiting."""
        return self._done.is_set()

    def get(self) -> tuple[WorkerPool, RingManager]:
        """The started pool and its ring (waits for them); raises what starting raised, as
        an m5stream error. The caller owns them from now on."""
        self._sized.set()  # the trainer waits: the ring is not to wait for a size any more
        self._done.wait()
        if self._error is not None:
            err = self._error
            if isinstance(err, M5Error):
                raise err
            raise WorkerDied(
                f"could not start the worker processes: {type(err).__name__}: {err}"
            ) from err
        assert self._result is not None
        self._taken = True
        return self._result

    def close(self, timeout: float = 10.0) -> None:
        """Shut down what was started and not handed over (waits for the start to end)."""
        self._sized.set()
        if not self._done.wait(timeout):
            log.warning("worker start-up did not end within %.0fs; leaving it", timeout)
            return
        if self._result is not None and not self._taken:
            pool, rings = self._result
            self._result = None
            pool.shutdown(0.1)
            rings.close()
