"""The one executor interface: start at a position, next batch, state, close.

An executor turns a :class:`~m5stream.plan.Plan` into batches, step by step, in plan order.
The :class:`~m5stream.Loader` owns one (chosen by :mod:`m5stream.execution.choose`), starts
it at the current position, and takes :class:`StepOutput` records from it; counting,
recording skips and converting to tensors stay in the Loader, so every executor delivers the
same thing the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import LoaderConfig, ReadAheadBudget
from ..dataset import Dataset
from ..plan import Plan
from ..stats import Stats
from ..transforms import TransformFn
from ..workers.task import BatchTransform

__all__ = ["ExecContext", "Executor", "StepOutput"]


@dataclass
class StepOutput:
    """What one step produced on this rank."""

    step: int
    #: the batch (numpy arrays and lists), or ``None`` when every sample was skipped or the
    #: rank's part of the step is empty
    batch: dict[str, Any] | None
    #: ``[index, key, "Type: message"]`` of each sample skipped
    skipped: list[list[Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: S3 requests (per operation) and bytes
    io: dict[str, int] | None = None
    #: slot bytes the batch takes (made in this process: sizes the workers' slots)
    needed: int = 0

    @property
    def samples(self) -> int:
        return len(self.batch["__index__"]) if self.batch is not None else 0


@dataclass
class ExecContext:
    """What every executor is built from."""

    dataset: Dataset
    config: LoaderConfig
    transform: TransformFn | None
    batch_transform: BatchTransform | None
    budget: ReadAheadBudget
    #: the Loader's counters, for what only an executor sees (restarts, ring growth)
    stats: Stats


class Executor(ABC):
    """Batches of a plan, in order (see module docstring)."""

    kind: ClassVar[str] = ""

    def __init__(self, ctx: ExecContext) -> None:
        self.ctx = ctx
        self.plan: Plan | None = None
        #: the next step :meth:`next` delivers
        self.step = 0

    def warm(self) -> None:  # noqa: B027 - optional hook
        """The Loader was made: start what takes time to start (worker processes), without
        waiting for it."""

    @abstractmethod
    def start(self, plan: Plan, step: int) -> None:
        """Begin delivering ``plan`` at ``step`` (abandons an iteration in progress)."""

    @abstractmethod
    def next(self) -> StepOutput:
        """The output of step :attr:`step`; the caller stops at ``plan.steps``."""

    def remember_skips(self, records: list[list[Any]]) -> None:  # noqa: B027 - optional hook
        """The skip records (``[epoch, index, key, "Type: message"]``) of a loaded state: an
        executor that can find poison samples (processes) never runs those again; in-process
        executors cannot survive a sample that kills the process, so they keep nothing."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """End the iteration: drop read-ahead and undelivered batches; keep what can serve
        the next iteration (worker processes)."""

    def close(self) -> None:
        """Release everything (idempotent)."""
        self.stop()

    def state(self) -> dict[str, Any]:
        return {"executor": self.kind, "step": self.step}

    def queue_depth(self) -> int:
        """Batches dispatched ahead of the trainer and not yet delivered (read from another
        thread by the live metrics: an estimate, never a lock)."""
        return 0
