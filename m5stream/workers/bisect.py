"""Finding the sample that kills its worker: bisecting a step's task (trainer side, no I/O).

A step's task whose worker died twice while running it is *suspected*: some sample in it
crashes the process (a decoder segfault or abort, an out-of-memory kill). A :class:`Hunt`
runs the task again as pieces, one piece at a time, each on a fresh worker, in the slot the
task held:

* the task's samples are cut in two halves, left first;
* a piece that finishes keeps its batch (copied out of the slot) and its skip records;
* a piece of more than one sample that kills its worker is cut in two again (the task's two
  deaths already say a killing sample is in it; an unrelated death only costs smaller pieces,
  never a wrong batch);
* a piece of one sample is sent with ``report_key`` (the worker names the sample before it
  transforms it) and is *poison* once it has killed its worker twice on its own: a sample is
  never skipped or reported on one unexplained death.

Pieces run left to right, so with ``on_error="raise"`` the first poison sample found (or the
first ordinary error a piece reports) is the first failure in the task's order, the one an
undisturbed run would raise; the hunt stops there. With ``on_error="skip"`` every poison
sample is found and the batch is the pieces' batches joined by the field rules
(:func:`join_batches`): an undisturbed run's batch without the poison samples. One poison
sample in a task of ``B`` costs ``ceil(log2 B) + 1`` deaths after the task's two and at most
``2 * ceil(log2 B) + 1`` pieces.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..batches import assemble_rows
from ..errors import CorruptData
from .protocol import BatchMeta

__all__ = ["POISON_NOTE", "Hunt", "Piece", "PoisonRecord", "join_batches"]

#: in every poison sample's message (and so in its skip record in the loader state)
POISON_NOTE = "a poison sample found by bisecting its batch"
#: deaths of a one-sample piece that make its sample poison
_DEATHS = 2


class PoisonRecord(NamedTuple):
    """A sample known to kill its worker: what its skip record says."""

    #: the sample's global index
    sample: int
    key: str | None
    message: str

    def skip_record(self) -> list[Any]:
        """The ``[index, key, "Type: message"]`` record of the skipped sample."""
        return [self.sample, self.key, f"CorruptData: {self.message}"]

    def error(self) -> CorruptData:
        return CorruptData(self.message, key=self.key, index=self.sample)

    @classmethod
    def from_skip(cls, record: list[Any]) -> PoisonRecord | None:
        """The poison sample of a loader skip record ``[epoch, index, key, text]``, if it is
        one (a resumed loader avoids the samples its state says killed their workers)."""
        if len(record) != 4 or not isinstance(record[3], str):
            return None
        text = record[3]
        if not text.startswith("CorruptData: ") or POISON_NOTE not in text:
            return None
        return cls(int(record[1]), record[2], text.removeprefix("CorruptData: "))


def poison_message(key: str | None, where: str, how: str) -> str:
    """The sentence of a poison sample's CorruptData: its key (or, if it was never read, its
    place), that it crashed the decoder, and the worker's exit signal."""
    what = f"sample {key!r}" if key is not None else f"sample {where}"
    return (
        f"{what} crashed the decoder: its worker {how}, twice, while processing it alone "
        f"({POISON_NOTE})"
    )


@dataclass
class Piece:
    """Positions ``lo:hi`` of the task's indices, run as one task."""

    lo: int
    hi: int
    #: times it killed its worker (kept only for one-sample pieces; larger ones are cut)
    deaths: int = 0

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass
class Hunt:
    """One suspected step's bisection (see module docstring). The executor sends
    :meth:`current`, then reports :meth:`done`, :meth:`failed` or :meth:`died` for it."""

    step: int
    #: the sample indices of the task that killed its worker twice
    indices: np.ndarray
    on_error: str
    #: the slot the pieces are written into, ``(ring_id, slot)``; ``None`` while it has none
    slot: tuple[int, int] | None
    todo: deque[Piece] = field(default_factory=deque)
    #: the part number of the piece in flight (0: none in flight)
    part: int = 0
    sent: int = 0
    batches: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[list[Any]] = field(default_factory=list)
    poison: list[PoisonRecord] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    io: dict[str, int] = field(default_factory=dict)
    #: the error that ends the hunt (``on_error="raise"``, or a piece's own error)
    failure: BaseException | None = None
    #: the key the one-sample piece in flight reported
    key: str | None = None

    def __post_init__(self) -> None:
        n = len(self.indices)
        # a one-sample task has killed twice alone already, but unnamed: once more, named
        self.todo.extend(_halves(Piece(0, n)) if n > 1 else [Piece(0, 1, _DEATHS - 1)])

    @property
    def finished(self) -> bool:
        return not self.todo

    def current(self) -> Piece:
        return self.todo[0]

    def next_part(self) -> int:
        """A new part number for sending the current piece."""
        self.sent += 1
        self.part = self.sent
        self.key = None
        return self.part

    def piece_indices(self) -> np.ndarray:
        p = self.current()
        return self.indices[p.lo : p.hi]

    def done(self, batch: dict[str, Any] | None, meta: BatchMeta) -> None:
        """The current piece finished: keep its batch and skip records."""
        self.part = 0
        self.todo.popleft()
        if batch is not None and len(batch["__key__"]):
            self.batches.append(batch)
        self.skipped.extend(meta.skipped)
        for k, v in meta.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        for k, n in meta.io.items():
            self.io[k] = self.io.get(k, 0) + n

    def failed(self, error: BaseException) -> None:
        """The current piece raised (``on_error="raise"``): the task's error; the hunt ends."""
        self.part = 0
        self.failure = error
        self.todo.clear()

    def died(self, where: str, how: str) -> PoisonRecord | None:
        """The current piece killed its worker (``how``: "was killed by SIGABRT"); the poison
        sample if this makes one (``where`` names a sample never read, by its place)."""
        self.part = 0
        p = self.current()
        if p.size > 1:
            self.todo.popleft()
            self.todo.extendleft(reversed(_halves(p)))
            return None
        p.deaths += 1
        if p.deaths < _DEATHS:
            return None
        self.todo.popleft()
        rec = PoisonRecord(int(self.indices[p.lo]), self.key, poison_message(self.key, where, how))
        self.poison.append(rec)
        if self.on_error != "skip":
            self.failure = rec.error()
            self.todo.clear()
        return rec


def _halves(p: Piece) -> list[Piece]:
    mid = p.lo + p.size // 2
    return [Piece(p.lo, mid), Piece(mid, p.hi)]


def join_batches(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One batch of the samples of ``parts`` (batches of consecutive pieces, in order), as the
    batch builder makes it from all their samples at once: every field is taken apart into its
    samples' values and batched again by the field rules (a field stacked in every piece stays
    stacked; one whose shapes differ between pieces becomes a list, as it would have)."""
    samples: list[dict[str, Any]] = []
    for part in parts:
        n = len(part["__key__"])
        names = list(part)
        for i in range(n):
            # a stacked field's row is an array (stacked again), a 1-d field's a numpy scalar
            samples.append({name: part[name][i] for name in names})
    return assemble_rows(samples) if samples else None
