"""Messages between the trainer and its workers (one duplex pipe per worker).

Every message is a small named tuple whose ``kind`` (:class:`Kind`) says what it is (named
tuples pickle as tuples: cheap on a path taken once per batch).

Trainer -> worker, in order on the pipe:

* :class:`RingMsg`, followed by the ring's memfd sent with ``SCM_RIGHTS``: from now on, tasks
  name slots of this ring; the worker unmaps the previous one.
* :class:`TaskMsg`: load these global sample indices, transform them, write the batch into
  the slot.
* :class:`StopMsg`: exit cleanly.

Worker -> trainer:

* :class:`ReadyMsg`: sent once, when the worker holds its payload (dataset, transforms): from
  now on a task is worked on as soon as it arrives. It answers no task.
* :class:`DoneReply`: the batch is in the slot; ``layout`` says where each field lies (see
  ``assemble``), ``meta`` (:class:`BatchMeta`) what the batch cost and skipped.
* :class:`ErrorReply`: the task failed; ``error`` is an :class:`ErrorInfo`.
* :class:`KeyReply`: a task with ``report_key`` (a one-sample piece of a bisection, see
  :mod:`m5stream.workers.bisect`) read its sample and is about to transform it: the key, so
  the trainer can name the sample if the worker dies on it. It answers no task.

``gen`` is the trainer's iteration generation: replies to an abandoned iteration are dropped
and their slot returned. ``part`` is 0 for a step's whole task and ``n > 0`` for the ``n``-th
piece the trainer sent while bisecting that step; replies carry the ``part`` of their task.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

from ..batches import SlotLayout
from ..errors import M5Error, WorkerError
from ..plan import IndexRun

__all__ = [
    "BatchMeta",
    "DoneReply",
    "ErrorInfo",
    "ErrorReply",
    "KeyReply",
    "Kind",
    "ReadyMsg",
    "RingMsg",
    "StopMsg",
    "TaskMsg",
]


class Kind(IntEnum):
    RING = 1
    TASK = 2
    STOP = 3
    DONE = 4
    ERROR = 5
    KEY = 6
    READY = 7


class RingMsg(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.RING

    ring_id: int
    num_slots: int
    slot_bytes: int


class TaskMsg(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.TASK

    gen: int
    step: int
    ring_id: int
    slot: int
    epoch: int
    #: a run when the indices are consecutive, so the message stays a few bytes
    indices: np.ndarray | IndexRun
    #: 0: the step's whole task; n > 0: the n-th bisection piece sent for the step
    part: int = 0
    #: send a :class:`KeyReply` once the (one) sample is read, before it is transformed
    report_key: bool = False

    def index_array(self) -> np.ndarray:
        got = self.indices
        return got.array() if isinstance(got, IndexRun) else got


class StopMsg(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.STOP


@dataclass(slots=True)
class BatchMeta:
    """What a finished batch cost and skipped."""

    #: ``[index, key, "Type: message"]`` of each sample skipped
    skipped: list[list[Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: slot bytes the batch needed (more than the slot has: its arrays came inline)
    needed: int = 0
    #: S3 requests (per operation) and bytes
    io: dict[str, int] = field(default_factory=dict)


class DoneReply(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.DONE

    gen: int
    step: int
    ring_id: int
    slot: int
    layout: SlotLayout
    meta: BatchMeta
    part: int = 0


class ErrorReply(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.ERROR

    gen: int
    step: int
    ring_id: int
    slot: int
    error: ErrorInfo
    part: int = 0


class KeyReply(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.KEY

    gen: int
    step: int
    part: int
    #: the sample's global index
    sample: int
    key: str


class ReadyMsg(NamedTuple):
    @property
    def kind(self) -> Kind:
        return Kind.READY

    worker: int


Reply = DoneReply | ErrorReply


@dataclass
class ErrorInfo:
    """A worker-side exception in a form that always crosses the pipe."""

    type_name: str
    message: str
    traceback: str
    key: str | None
    index: int | None
    pickled: bytes | None  # the original exception when it pickles

    @classmethod
    def capture(cls, exc: BaseException, key: str | None, index: int | None) -> ErrorInfo:
        pickled: bytes | None
        try:
            data = pickle.dumps(exc)
            pickle.loads(data)  # some exceptions pickle but do not unpickle
            pickled = data
        except Exception:
            pickled = None
        return cls(
            type_name=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
            key=key,
            index=index,
            pickled=pickled,
        )

    def to_exception(self, worker: int | None) -> BaseException:
        """An m5stream error to raise in the trainer.

        An ``M5Error`` raised by the worker is re-raised as itself (so ``except NotFound``
        works) with the worker traceback attached as a note; anything else becomes a
        :class:`WorkerError` chained to the original.
        """
        original = pickle.loads(self.pickled) if self.pickled is not None else None
        where = f"worker {worker}" if worker is not None else "the loading thread"
        if isinstance(original, M5Error):
            original.add_context(key=self.key)
            original.add_note(f"Raised in {where}:\n{self.traceback}")
            return original
        err = WorkerError(
            f"{self.type_name}: {self.message} (raised in {where} while loading sample "
            f"{self.key!r})",
            key=self.key,
            index=self.index,
            worker_traceback=self.traceback,
            cause_type=self.type_name,
        )
        if isinstance(original, BaseException):
            err.__cause__ = original
        return err
