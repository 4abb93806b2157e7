"""What a format can do, as a typed descriptor, and the one type of a started fetch.

The execution layer chooses its path from :class:`FormatCaps` alone (never by checking which
methods a format overrides). :class:`Fetch` is what ``ShardReader.fetch_unit`` returns: a
handle on bytes that are on their way, whatever moves them (CRT requests, a download thread).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

__all__ = ["Fetch", "FormatCaps"]


@dataclass(frozen=True)
class FormatCaps:
    """Capabilities of a format.

    * ``columnar``: readers give decoded column blocks (``ShardReader.block_at``), so a run
      of samples is read at once, column by column.
    * ``block_reads``: readers implement ``fetch_unit``/``decode_unit``: a decode unit can be
      fetched ahead and decoded in a read-ahead thread.
    * ``shard_units``: a decode unit is a whole shard (tar), fetched whole.
    * ``decode_units``: a shard splits into several decode units (``Format.unit_starts``:
      Parquet row groups); batches of one unit should go to one worker.
    * ``batch_fetch``: ``Format.prefetch`` fetches the objects of a batch at once (raw).
    * ``whole_shard_fetch``: read row by row from S3, a shard is best downloaded whole into
      the shard cache ahead of the workers (tar, JSONL, CSV).
    """

    columnar: bool = False
    block_reads: bool = False
    shard_units: bool = False
    decode_units: bool = False
    batch_fetch: bool = False
    whole_shard_fetch: bool = False


class Fetch:
    """The bytes one decode unit needs, started and not yet waited for.

    ``wait()`` returns the payload (or raises what the fetch raised) and may be called more
    than once; ``cancel()`` drops a fetch that has not begun (a download still queued).
    """

    __slots__ = ("_cancel", "_done", "_error", "_value", "_wait", "context")

    def __init__(
        self,
        wait: Callable[[], Any],
        cancel: Callable[[], bool] | None = None,
        context: Any = None,
    ) -> None:
        self._wait: Callable[[], Any] | None = wait
        self._cancel = cancel
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        #: what the format needs besides the payload to decode (e.g. the ranges fetched)
        self.context = context

    @classmethod
    def of_future(cls, fut: Future[Any], context: Any = None) -> Fetch:
        return cls(fut.result, fut.cancel, context)

    def wait(self) -> Any:
        if not self._done:
            # one waiter (the thread that decodes the unit); done only once the payload is
            # here, so that cancel() still reaches a download that is queued
            assert self._wait is not None
            try:
                self._value = self._wait()
            except BaseException as exc:
                self._error = exc
            self._done, self._wait = True, None
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        """Whether the fetch was stopped before it began."""
        return bool(self._cancel()) if self._cancel is not None and not self._done else False
