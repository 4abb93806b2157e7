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
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle

from ..batches import write_columns, write_rows
from ..dataset import Dataset
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
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if isinstance(msg, StopMsg):
                return
            if isinstance(msg, RingMsg):
                fd = recv_handle(conn)
                if ring is not None:
                    ring.close()
                ring = SlotRing(msg.ring_id, msg.num_slots, msg.slot_bytes, fd=fd)
                continue
            if isinstance(msg, TaskMsg):
                reply = _run_task(
                    msg, conn, ring, dataset, transform, batch_transform, seed, on_error
                )
                try:
                    conn.send(reply)
                except (BrokenPipeError, OSError):
                    return
    finally:
        if ring is not None:
            ring.close()
        dataset.close()


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
