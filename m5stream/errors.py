"""The one error hierarchy of m5stream.

Every error m5stream raises derives from :class:`M5Error` and from the builtin a caller would
catch for the same condition (``NotFound`` is a ``FileNotFoundError``, ``CorruptData`` a
``ValueError``), so existing ``except`` clauses keep working. Errors carry *where* the problem
is (``uri``, ``shard``, ``byte_range``, ``key``, ``index``) as attributes and in the message,
never a credential, and survive pickling across worker processes unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "M5Error",
    "NotFound",
    "PermissionDenied",
    "CorruptData",
    "ConfigError",
    "StateMismatch",
    "Unsupported",
    "WorkerError",
    "WorkerDied",
    "SlotsExhausted",
]


class M5Error(Exception):
    """Base of every m5stream error.

    ``message`` is the human sentence; the keyword context (``uri=``, ``key=``, ...) is kept
    as attributes and appended to ``str(err)`` as ``[uri=... key=...]``.
    """

    _CONTEXT = ("uri", "shard", "byte_range", "key", "index")
    uri: Any
    shard: Any
    byte_range: Any
    key: Any
    index: Any

    def __init__(self, message: str, **context: Any) -> None:
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}
        for name in self._CONTEXT:
            setattr(self, name, self.context.get(name))
        super().__init__(message)

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = " ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} [{where}]"

    def add_context(self, **context: Any) -> None:
        """Fill in context fields that are not set yet (callers higher up know more)."""
        for name, value in context.items():
            if value is not None and self.context.get(name) is None:
                self.context[name] = value
                if name in self._CONTEXT:
                    setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Builtin exceptions pickle only ``args``; keep the context across processes.
        return (_rebuild, (type(self), self.message, self.context))


def _rebuild(cls: type[M5Error], message: str, context: dict[str, Any]) -> M5Error:
    return cls(message, **context)


class NotFound(M5Error, FileNotFoundError):
    """An object, file, shard, table or sample that does not exist."""


class PermissionDenied(M5Error, PermissionError):
    """Access refused by the storage or catalog service."""


class CorruptData(M5Error, ValueError):
    """Bytes that do not parse as the format they claim (tar, Parquet, JSON, image...)."""


class ConfigError(M5Error, ValueError):
    """Arguments that cannot work together (unknown format, bad batch size, ...)."""


class Unsupported(M5Error, NotImplementedError):
    """A source m5stream recognises but cannot read yet (e.g. an Iceberg table)."""


class StateMismatch(M5Error, ValueError):
    """A saved loader state that does not belong to this dataset or loader configuration."""


class WorkerError(M5Error, RuntimeError):
    """An exception raised inside a worker process, re-raised in the trainer.

    ``worker_traceback`` holds the worker's formatted traceback; ``cause_type`` the name of the
    original exception class.
    """

    def __init__(self, message: str, **context: Any) -> None:
        self.worker_traceback: str = context.pop("worker_traceback", "")
        self.cause_type: str = context.pop("cause_type", "")
        super().__init__(message, **context)
        # keep them for pickling
        self.context["worker_traceback"] = self.worker_traceback
        self.context["cause_type"] = self.cause_type

    def __str__(self) -> str:
        ctx = {k: v for k, v in self.context.items() if k not in ("worker_traceback", "cause_type")}
        where = " ".join(f"{k}={v}" for k, v in ctx.items())
        head = f"{self.message} [{where}]" if where else self.message
        if self.worker_traceback:
            return f"{head}\n\nWorker traceback:\n{self.worker_traceback}"
        return head


class WorkerDied(M5Error, RuntimeError):
    """A worker process exited without being asked to (killed, crashed, out of memory).

    ``worker`` and ``exit_code`` (negative: the signal) say which and how, where known."""

    worker: int | None = None
    exit_code: int | None = None


class SlotsExhausted(M5Error, RuntimeError):
    """Every shared-memory batch slot is still referenced by batches the caller kept."""
