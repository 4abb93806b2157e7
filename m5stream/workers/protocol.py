"""Messages between the trainer and its workers (one duplex pipe per worker).

Trainer -> worker, in order on the pipe:

* ``(Cmd.RING, ring_id, num_slots, slot_bytes)`` followed by the ring's memfd sent with
  ``SCM_RIGHTS``: from now on, tasks name slots of this ring; the worker unmaps the previous one.
* ``(Cmd.TASK, gen, step, ring_id, slot, epoch, indices)``: load these global sample indices,
  transform them, write the batch into ``slot``.
* ``(Cmd.STOP,)``: exit cleanly.

Worker -> trainer:

* ``(Reply.DONE, gen, step, ring_id, slot, layout, meta)``: the batch is in the slot; ``layout``
  says where each field lies (see ``assemble``), ``meta`` carries ``index``, ``keys``,
  ``skipped`` and per-stage ``seconds``.
* ``(Reply.ERROR, gen, step, ring_id, slot, error)``: the task failed; ``error`` is an
  :class:`ErrorInfo`.

``gen`` is the trainer's iteration generation: replies to an abandoned iteration are dropped
and their slot returned.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from enum import IntEnum

from ..errors import M5Error, WorkerError

__all__ = ["Cmd", "ErrorInfo", "Reply"]


class Cmd(IntEnum):
    RING = 1
    TASK = 2
    STOP = 3


class Reply(IntEnum):
    DONE = 1
    ERROR = 2


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
