"""The inline executor: each batch read, transformed and assembled in the trainer's thread
when it is asked for. No threads, no processes: the reference every other executor equals."""

from __future__ import annotations

from ..plan import Plan
from .base import Executor, StepOutput
from .rows import read_rows

__all__ = ["InlineExecutor"]


class InlineExecutor(Executor):
    kind = "inline"

    def start(self, plan: Plan, step: int) -> None:
        self.plan, self.step = plan, step

    def next(self) -> StepOutput:
        assert self.plan is not None, "start() first"
        step = self.step
        out = read_rows(self.ctx, step, self.plan.indices(step), self.plan.epoch)
        self.step = step + 1
        return out
