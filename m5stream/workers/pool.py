"""The trainer's side of the worker processes: start, send, wait, and shut down.

Workers are started with ``forkserver`` by default (:mod:`m5stream.workers.launch`: never plain
``fork``, the payload pickled once, the trainer's ``__main__`` not re-run when the payload does
not need it); the forkserver preloads this package and the payload's modules, so a worker
starts in milliseconds. A worker says :class:`ReadyMsg` once it has its payload
(:attr:`WorkerPool.ready`). ``wait`` watches every worker's pipe
*and* its process sentinel, so a worker that dies (SIGKILL, OOM, segfault) becomes a
:class:`WorkerDied` error at once instead of a hang. Shutdown escalates: STOP message and join,
then SIGTERM, then SIGKILL. ``restart`` replaces one dead worker; ``drain`` first reads what it
sent before it died (replies that arrived but were not read when the death was seen).
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import send_handle
from typing import Any

from ..dataset import Dataset
from ..errors import ConfigError, WorkerDied
from ..transforms import TransformFn
from .launch import Payload, context, start_process
from .protocol import KeyReply, ReadyMsg, RingMsg, StopMsg, TaskMsg
from .slots import SlotRing
from .task import BatchTransform
from .worker import worker_main

__all__ = ["WorkerPool", "describe_exit"]

#: unanswered task bytes per worker; a Unix socketpair buffers ~200 KiB, keep far below it
TASK_BYTES_BUDGET = 32 << 10


def describe_exit(code: int | None) -> str:
    """How a process that ended with ``code`` ended: "was killed by SIGABRT", ..."""
    if code is None:
        return "is gone"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class WorkerPool:
    """``num_workers`` worker processes, each with its own duplex pipe."""

    def __init__(
        self,
        num_workers: int,
        dataset: Dataset,
        transform: TransformFn | None,
        batch_transform: BatchTransform | None = None,
        *,
        seed: int,
        on_error: str,
        start_method: str | None = None,
        payload: Payload | None = None,
    ) -> None:
        #: ``payload``: those arguments pickled already (:meth:`payload_of`)
        self.payload = payload or self.payload_of(
            dataset, transform, batch_transform, seed=seed, on_error=on_error
        )
        preload = (*dataset.format.modules, *self.payload.modules)
        self._ctx = context(start_method, preload)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        #: which workers have said they hold their payload (a fresh one has not yet)
        self.ready = [False] * num_workers
        self.inflight = [0] * num_workers
        #: bytes of the task messages each worker has not answered yet, oldest first
        self.queued: list[deque[int]] = [deque() for _ in range(num_workers)]
        #: the ring every worker has mapped (a replacement worker is sent it too)
        self._ring: SlotRing | None = None
        try:
            for wid in range(num_workers):
                conn, p = self._spawn(wid)
                self.conns.append(conn)
                self.procs.append(p)
        except BaseException:
            self.shutdown()
            raise

    @staticmethod
    def payload_of(
        dataset: Dataset,
        transform: TransformFn | None,
        batch_transform: BatchTransform | None,
        *,
        seed: int,
        on_error: str,
    ) -> Payload:
        """What the workers are started with; a ConfigError when it cannot be pickled."""
        try:
            return Payload((dataset, transform, batch_transform, seed, on_error))
        except Exception as exc:
            raise ConfigError(
                "the dataset and transforms cannot be sent to worker processes "
                f"({type(exc).__name__}: {exc}); define transforms at module level (not as "
                "lambdas or nested functions), or use num_workers=0"
            ) from exc

    def _spawn(self, wid: int) -> tuple[Connection, Any]:
        parent, child = self._ctx.Pipe(duplex=True)
        p = start_process(
            self._ctx,
            self.payload,
            target=worker_main,
            args=(wid, child, self.payload.data, os.getpid()),
            name=f"m5stream-worker-{wid}",
            daemon=True,
        )
        child.close()
        return parent, p

    def restart(self, wid: int) -> None:
        """Replace worker ``wid`` (dead) with a fresh process on the same ring; the tasks it
        held are the caller's to send again."""
        old, conn = self.procs[wid], self.conns[wid]
        old.join(0.5)
        if old.is_alive():
            old.kill()
            old.join(1.0)
        conn.close()
        try:
            old.close()
        except ValueError:
            pass
        self.conns[wid], self.procs[wid] = self._spawn(wid)
        self.ready[wid] = False
        self.inflight[wid] = 0
        self.queued[wid].clear()
        if self._ring is not None:
            self._send_ring(wid, self._ring)

    def _send_ring(self, wid: int, ring: SlotRing) -> None:
        assert ring.fd is not None
        try:
            self.conns[wid].send(RingMsg(ring.ring_id, ring.num_slots, ring.slot_bytes))
            send_handle(self.conns[wid], ring.fd, self.procs[wid].pid)
        except (OSError, EOFError) as err:
            raise self._died(wid, err) from err

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def send_ring(self, ring: SlotRing) -> None:
        self._ring = ring
        for wid in range(len(self.conns)):
            self._send_ring(wid, ring)

    def submit(self, worker: int, msg: TaskMsg, nbytes: int = 0) -> None:
        # a worker killed since the last wait() shows first as a broken pipe here, before
        # its sentinel is looked at: the same WorkerDied as wait() raises, not an OSError
        try:
            self.conns[worker].send(msg)
        except (OSError, EOFError) as err:
            raise self._died(worker, err) from err
        self.inflight[worker] += 1
        self.queued[worker].append(nbytes)

    def can_take(self, worker: int, nbytes: int) -> bool:
        """Whether a task of ``nbytes`` can be sent to ``worker`` without risking a block.

        The trainer must never block writing a task while the worker blocks writing a reply
        the trainer is not reading (a deadlock): unanswered tasks are kept well within the
        socket's buffer (``TASK_BYTES_BUDGET``)."""
        return not self.queued[worker] or sum(self.queued[worker]) + nbytes <= TASK_BYTES_BUDGET

    def least_loaded(self) -> int:
        return min(range(len(self.inflight)), key=self.inflight.__getitem__)

    def wait(self, timeout: float | None) -> list[tuple[int, Any]]:
        """Replies ready within ``timeout`` as ``(worker, message)``; raises WorkerDied.
        (A :class:`ReadyMsg` is not a reply: waiting goes on after one.)"""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out = self._wait_once(left)
            if out or (deadline is not None and time.monotonic() >= deadline):
                return out

    def _wait_once(self, timeout: float | None) -> list[tuple[int, Any]]:
        sentinels = {p.sentinel: i for i, p in enumerate(self.procs)}
        conn_ix = {c: i for i, c in enumerate(self.conns)}
        ready = wait(list(self.conns) + list(sentinels), timeout)
        out: list[tuple[int, Any]] = []
        dead: list[int] = []
        for obj in ready:
            if obj in conn_ix:
                wid = conn_ix[obj]
                try:
                    while obj.poll():
                        msg = self._answered(wid, obj.recv())
                        if msg is not None:
                            out.append((wid, msg))
                except (EOFError, OSError):
                    dead.append(wid)
            else:
                dead.append(sentinels[obj])
        if dead and not out:
            raise self._died(dead[0])
        return out

    def poll_ready(self) -> bool:
        """Whether a worker holds its payload, reading what has arrived without waiting
        (before any task is sent only :class:`ReadyMsg` comes); raises WorkerDied."""
        if not any(self.ready):
            self._wait_once(0)
        return any(self.ready)

    def _answered(self, wid: int, msg: Any) -> Any:
        """Count a message from ``wid``: a reply answers its oldest task; a KeyReply none;
        a ReadyMsg marks the worker ready and is not handed on (``None``)."""
        if isinstance(msg, ReadyMsg):
            self.ready[wid] = True
            return None
        if not isinstance(msg, KeyReply):
            self.inflight[wid] -= 1
            if self.queued[wid]:
                self.queued[wid].popleft()
        return msg

    def drain(self, wid: int) -> list[Any]:
        """What dead worker ``wid`` sent before it died that was not read yet (its death can be
        seen on a send first, with replies still in its pipe); call before :meth:`restart`."""
        out: list[Any] = []
        conn = self.conns[wid]
        try:
            while conn.poll(0):
                msg = self._answered(wid, conn.recv())
                if msg is not None:
                    out.append(msg)
        except (EOFError, OSError):
            pass  # the end of what it sent
        return out

    def _died(self, wid: int, err: BaseException | None = None) -> WorkerDied:
        """The error for worker ``wid``'s death, seen on its pipe (``err``) or its sentinel."""
        p = self.procs[wid]
        # a broken pipe can be seen before the process is reaped: wait briefly for its exit
        # code, which says how it died (a signal is the usual answer: OOM killer, kill -9)
        p.join(0.5)
        how = f" ({type(err).__name__} on its pipe)" if err is not None else ""
        died = WorkerDied(
            f"worker {wid} (pid {p.pid}) {describe_exit(p.exitcode)} while "
            f"{self.inflight[wid]} batch(es) were assigned to it{how}",
        )
        died.worker = wid
        died.exit_code = p.exitcode
        return died

    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop every worker: STOP and join for up to ``timeout`` in all, then terminate, kill."""
        for conn in self.conns:
            try:
                conn.send(StopMsg())
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for conn in self.conns:
            conn.close()
        for p in self.procs:
            try:
                p.close()
            except ValueError:
                pass
        self.conns, self.procs, self.inflight, self.queued = [], [], [], []
        self.ready = []
