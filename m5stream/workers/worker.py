"""The worker process: receives tasks, writes batches into shared-memory slots.

A worker exits when told (``StopMsg``), when its pipe closes (the trainer is gone), or - on
Linux - with ``PR_SET_PDEATHSIG`` when the process that started it dies. It ignores SIGINT so
that Ctrl-C is handled once, by the trainer.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import signal
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle

from ..batches import write_columns, write_rows
from ..dataset import Dataset
from ..storage.iostats import io_counters, io_delta
from ..transforms import TransformFn
from .protocol import (
    BatchMeta,
    DoneReply,
    ErrorInfo,
    ErrorReply,
    KeyReply,
    ReadyMsg,
    RingMsg,
    StopMsg,
    TaskMsg,
)
from .slots import SlotRing
from .task import BatchTransform, load_samples, skip_record

__all__ = ["worker_main"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass  # the pipe EOF still stops us


def worker_main(worker_id: int, conn: Connection, payload: bytes, parent_pid: int) -> None:
    """Worker ``worker_id``'s loop; ``payload``: the pickled ``(dataset, transform,
    batch_transform, seed, on_error)`` (:class:`~m5stream.workers.launch.Payload`)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    dataset: Dataset
    transform: TransformFn | None
    batch_transform: BatchTransform | None
    dataset, transform, batch_transform, seed, on_error = pickle.loads(payload)
    del payload
    try:
        conn.send(ReadyMsg(worker_id))
    except OSError:
        return  # the trainer is gone
    # Per-sample dicts and lazy images are short-lived: keep the cyclic GC from rescanning
    # the (frozen) startup objects and from running every 700 allocations.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    if os.getppid() != parent_pid and not _parent_alive(parent_pid):
        return
    ring: SlotRing | None = None
    inbox = _Inbox(conn, dataset)
    try:
        while True:
            try:
                msg, fd = inbox.next()
            except (EOFError, OSError):
                return
            if isinstance(msg, StopMsg):
                return
            if isinstance(msg, RingMsg):
                if ring is not None:
                    ring.close()
                ring = SlotRing(msg.ring_id, msg.num_slots, msg.slot_bytes, fd=fd)
                continue
            if isinstance(msg, TaskMsg):
                ahead_io = inbox.started.pop(_tag(msg), None)
                inbox.fetch_ahead()
                reply = _run_task(
                    msg, conn, ring, dataset, transform, batch_transform, seed, on_error
                )
                if ahead_io and isinstance(reply, DoneReply):
                    # the requests its fetch made when it started, a task earlier
                    for k, v in ahead_io.items():
                        reply.meta.io[k] = reply.meta.io.get(k, 0) + v
                try:
                    conn.send(reply)
                except (BrokenPipeError, OSError):
                    return
    finally:
        if ring is not None:
            ring.close()
        dataset.close()


class _Inbox:
    """The worker's messages, in order, with a look at the tasks already queued behind the
    current one: their S3 objects are fetched while it works on this one
    (``Dataset.prefetch_ahead``: formats that fetch a batch's objects at once, raw S3)."""

    def __init__(self, conn: Connection, dataset: Dataset) -> None:
        self.conn = conn
        self.dataset = dataset
        self.ahead = dataset.format.caps.batch_fetch
        #: messages read ahead, each with the descriptor that follows a RingMsg
        self.queue: deque[tuple[object, int | None]] = deque()
        #: tasks whose fetch was started ahead -> the S3 requests starting it made
        self.started: dict[tuple[int, int, int], dict[str, int]] = {}

    def _recv(self) -> tuple[object, int | None]:
        msg = self.conn.recv()
        # a ring's descriptor comes right after its message, whenever that is read
        return msg, (recv_handle(self.conn) if isinstance(msg, RingMsg) else None)

    def next(self) -> tuple[object, int | None]:
        if not self.queue:
            return self._recv()
        return self.queue.popleft()

    def fetch_ahead(self) -> None:
        """Read the tasks waiting in the pipe (without blocking) and start their fetches."""
        if not self.ahead:
            return
        try:
            while len(self.queue) < Dataset.AHEAD and self.conn.poll(0):
                self.queue.append(self._recv())
        except (EOFError, OSError):
            return  # the trainer is gone: the next read says so
        for msg, _ in self.queue:
            if isinstance(msg, TaskMsg) and _tag(msg) not in self.started:
                io0 = io_counters()
                try:
                    self.dataset.prefetch_ahead(self.dataset.locate_many(msg.index_array())[0])
                except Exception:
                    pass  # the task itself fetches again, and reports what fails
                self.started[_tag(msg)] = io_delta(io0)


def _tag(msg: TaskMsg) -> tuple[int, int, int]:
    return msg.gen, msg.step, msg.part


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_task(
    msg: TaskMsg,
    conn: Connection,
    ring: SlotRing | None,
    dataset: Dataset,
    transform: TransformFn | None,
    batch_transform: BatchTransform | None,
    seed: int,
    on_error: str,
) -> DoneReply | ErrorReply:
    gen, step, ring_id, slot, part = msg.gen, msg.step, msg.ring_id, msg.slot, msg.part
    indices = msg.index_array()

    def report_key(index: int, key: str) -> None:
        # sent before the transform runs: if it kills this process, the trainer knows the key
        try:
            conn.send(KeyReply(gen, step, part, index, str(key)))
        except OSError:
            pass  # the trainer is gone: the reply's send below ends this worker

    res = load_samples(
        dataset,
        transform,
        indices,
        seed=seed,
        epoch=msg.epoch,
        on_error=on_error,
        defer=batch_transform is None,
        columnar=batch_transform is None,
        on_read=report_key if msg.report_key else None,
    )
    if res.error is not None:
        return ErrorReply(gen, step, ring_id, slot, res.error, part)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        assert ring is not None and ring.ring_id == ring_id, "task names an unknown ring"
        if res.columns is not None:
            layout, needed = write_columns(res.columns, ring.slot(slot))
        elif batch_transform is not None:
            layout, needed = write_columns(batch_transform(res.samples), ring.slot(slot))
        else:
            layout, needed, failures = write_rows(res.samples, ring.slot(slot), timings)
            for s, exc in failures:  # lazy images that failed while being made
                if on_error != "skip":
                    info = ErrorInfo.capture(exc, s.get("__key__"), s.get("__index__"))
                    return ErrorReply(gen, step, ring_id, slot, info, part)
                res.skipped.append(skip_record(s["__index__"], s.get("__key__"), exc))
    except Exception as exc:
        return ErrorReply(gen, step, ring_id, slot, ErrorInfo.capture(exc, None, None), part)
    seconds = dict(res.seconds)
    decode = timings.get("decode", 0.0)
    seconds["assemble"] = time.perf_counter() - t0 - decode
    seconds["decode"] = decode
    meta = BatchMeta(skipped=res.skipped, seconds=seconds, needed=needed, io=res.io)
    return DoneReply(gen, step, ring_id, slot, layout, meta, part)
