"""Execution layer: executors that turn a plan into batches (inline, threads, processes),
the read-ahead they use, and the choice between them."""

from __future__ import annotations

from .base import ExecContext, Executor, StepOutput
from .choose import choose_executor
from .inline import InlineExecutor
from .processes import ProcessExecutor
from .threads import ThreadExecutor

__all__ = [
    "EXECUTORS",
    "ExecContext",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "StepOutput",
    "ThreadExecutor",
    "choose_executor",
    "make_executor",
]

EXECUTORS: dict[str, type[Executor]] = {
    e.kind: e for e in (InlineExecutor, ThreadExecutor, ProcessExecutor)
}


def make_executor(kind: str, ctx: ExecContext) -> Executor:
    return EXECUTORS[kind](ctx)
