"""Columns of a batch read column-wise (Parquet, CSV): decoded blocks, keys, concatenation.

A column is a 1-d numpy array, a Python list, an Arrow array (types without a cheaper form),
or - for text and binary columns without nulls - a :class:`TextColumn`: the Arrow layout
(offsets + bytes) as numpy views, made once per decoded block. That form is kept as long as
possible: a batch's piece is two numpy slices, a worker copies the offsets and bytes into the
batch's shared-memory slot (no Python object per value, nothing pickled), and the trainer
makes the Python ``str``/``bytes`` list once, when the batch is delivered, with the
``m5stream._native.textcol`` kernel. :func:`finish` turns every column into
what the row path would have batched (``m5stream.batches.fields`` rules), so both paths deliver
identical batches.

The ``__key__`` of such a batch is a :class:`Keys`: the same strings as the row path's list
(``<shard key>#<row>``), described by runs of rows and made only when they are read. A table's
rows have no key of their own, and making one Python string per row for every batch cost
more than making the batch's text column (issue #5's measurements).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any, overload

import numpy as np

from .._native import textcol
from .fields import classify

__all__ = [
    "ColumnBlock",
    "Keys",
    "TextColumn",
    "arrow_text",
    "arrow_values",
    "concat",
    "finish",
    "settle",
    "values_from_offsets_reference",
]


class Keys(Sequence[str]):
    """The sample keys of a batch read column-wise: ``<prefix><row>`` for runs of rows.

    A read-only sequence of ``str`` that equals the list of the same strings (and compares,
    indexes, slices, iterates and pickles like one); the strings are made on first use and
    then kept. ``Keys(iterable_of_str)`` makes one from plain strings (what ``type(x)(items)``
    does in generic code such as torch's ``pin_memory``)."""

    __slots__ = ("_list", "_n", "_parts")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._list: list[str] | None = [str(k) for k in keys]
        self._parts: list[tuple[str, range | np.ndarray | None]] = []
        self._n = len(self._list)

    @classmethod
    def runs(cls, parts: list[tuple[str, range | np.ndarray | None]]) -> Keys:
        """Keys of ``parts``: ``(prefix, rows)`` with rows a ``range`` or an int array, or
        ``None`` for the one key ``prefix`` itself (a raw object's)."""
        k = cls.__new__(cls)
        k._list = None
        k._parts = parts
        k._n = sum(1 if r is None else len(r) for _, r in parts)
        return k

    @staticmethod
    def concat(items: list[Keys]) -> Keys:
        """One ``Keys`` of several in order (adjacent ranges of one prefix merged)."""
        if any(k._list is not None for k in items):
            return Keys(v for k in items for v in k)
        parts: list[tuple[str, range | np.ndarray | None]] = []
        for k in items:
            for prefix, rows in k._parts:
                if parts and isinstance(rows, range) and rows.step == 1:
                    p, last = parts[-1]
                    if p == prefix and isinstance(last, range) and last.stop == rows.start:
                        parts[-1] = (p, range(last.start, rows.stop))
                        continue
                parts.append((prefix, rows))
        return Keys.runs(parts)

    def tolist(self) -> list[str]:
        if self._list is None:
            out: list[str] = []
            for prefix, rows in self._parts:
                if rows is None:
                    out.append(prefix)
                else:
                    out.extend(
                        [
                            f"{prefix}{r}"
                            for r in (rows if isinstance(rows, range) else rows.tolist())
                        ]
                    )
            self._list = out
            self._parts = []
        return self._list

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice) or self._list is not None:
            return self.tolist()[i]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("key index out of range")
        for prefix, rows in self._parts:
            if rows is None:
                if i == 0:
                    return prefix
                i -= 1
            elif i < len(rows):
                return f"{prefix}{int(rows[i])}"
            else:
                i -= len(rows)
        raise IndexError("key index out of range")  # not reached: _n counts the parts

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Keys):
            return self._n == other._n and self.tolist() == other.tolist()
        if isinstance(other, (list, tuple)):
            return self._n == len(other) and self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence with list semantics

    def __repr__(self) -> str:
        return f"Keys({self.tolist()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._list is not None:
            return (Keys, (self._list,))
        return (Keys.runs, (self._parts,))


def values_from_offsets_reference(offsets: np.ndarray, data: Any, text: bool = True) -> list[Any]:
    """Pure-Python twin of ``m5stream._native.textcol.values_from_offsets``."""
    o = np.asarray(offsets, dtype=np.int64).tolist()
    b = bytes(data)
    if not o or o[0] < 0 or o[-1] > len(b) or any(x > y for x, y in pairwise(o)):
        raise ValueError("text column offsets are not increasing or point outside its bytes")
    vals = [b[x:y] for x, y in pairwise(o)]
    return [v.decode("utf-8") for v in vals] if text else vals


class TextColumn:
    """A text or binary column without nulls as Arrow lays it out: ``n + 1`` int32 offsets
    into a byte buffer (numpy views of the decoded Arrow array's buffers, which ``owner``
    keeps alive).

    Blocks hold their text columns in this form (made once per block, in the thread that
    decodes it), so a batch's piece is two numpy slices and its Python values one kernel call
    (``m5stream._native.textcol``) - no Arrow object per batch. The worker path ships
    ``parts()`` through the shared-memory slot."""

    __slots__ = ("data", "offsets", "owner", "text")

    def __init__(self, offsets: np.ndarray, data: np.ndarray, text: bool, owner: Any = None):
        self.offsets = offsets
        self.data = data
        self.text = text
        self.owner = owner

    @classmethod
    def from_arrow(cls, column: Any) -> TextColumn:
        """Of a pyarrow ``string``/``binary`` array without nulls (``arrow_text``)."""
        bufs = column.buffers()
        n, off = len(column), column.offset
        if bufs[1] is None:  # an empty array may have no offsets buffer
            offsets = np.zeros(1, np.int32)
        else:
            offsets = np.frombuffer(bufs[1], dtype=np.int32)[off : off + n + 1]
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else _EMPTY
        return cls(offsets, data, column.type.id == _text_ids()[0], column)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def slice(self, a: int, n: int) -> TextColumn:
        return TextColumn(self.offsets[a : a + n + 1], self.data, self.text, self.owner)

    def values(self) -> list[Any]:
        """The Python ``str`` (or ``bytes``) values."""
        return textcol.values_from_offsets(self.offsets, self.data, text=self.text)

    def take(self, rows: np.ndarray) -> list[Any]:
        """The values of ``rows`` (any order), as a list."""
        lo, hi = int(rows.min()), int(rows.max())
        vals = self.slice(lo, hi - lo + 1).values()
        return [vals[i] for i in (rows - lo).tolist()]

    def parts(self) -> tuple[np.ndarray, np.ndarray]:
        """Offsets rebased to 0, and just the bytes they span."""
        lo, hi = int(self.offsets[0]), int(self.offsets[-1])
        return self.offsets - np.int32(lo), self.data[lo:hi]

    @staticmethod
    def concat(columns: list[TextColumn]) -> TextColumn:
        """The values of several in order, as one (a batch that spans blocks)."""
        pieces = [c.parts() for c in columns]
        bases = np.cumsum([0] + [len(d) for _, d in pieces[:-1]])
        offsets = np.concatenate(
            [pieces[0][0]] + [o[1:] + np.int32(b) for (o, _), b in zip(pieces[1:], bases[1:])]
        ).astype(np.int32)
        data = np.concatenate([d for _, d in pieces]) if pieces else _EMPTY
        return TextColumn(offsets, data, columns[0].text)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextColumn):
            return self.text == other.text and self.values() == other.values()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TextColumn({self.values()!r})"


def arrow_values(column: Any) -> list[Any]:
    """The Python values of an Arrow column (``str``/``bytes`` through the text kernel)."""
    if arrow_text(column):
        return TextColumn.from_arrow(column).values()
    return list(column.to_pylist())


_EMPTY = np.zeros(0, np.uint8)
_TEXT_IDS: tuple[int, ...] = ()


def _text_ids() -> tuple[int, ...]:
    """Arrow type ids of ``string`` and ``binary`` (int32 offsets; the large types are
    made into lists by pyarrow)."""
    global _TEXT_IDS
    if not _TEXT_IDS:
        import pyarrow as pa

        _TEXT_IDS = (pa.string().id, pa.binary().id)
    return _TEXT_IDS


def arrow_text(column: Any) -> bool:
    """A pyarrow string/binary array without nulls (shipped as offsets + bytes)."""
    t = getattr(column, "type", None)
    if t is None or isinstance(column, np.ndarray) or getattr(column, "null_count", 1) != 0:
        return False
    return getattr(t, "id", None) in _text_ids()


def _as_list(column: Any) -> list[Any]:
    if isinstance(column, list):
        return column
    if isinstance(column, TextColumn):
        return column.values()
    if isinstance(column, np.ndarray):
        return column.tolist()
    if isinstance(column, Keys):
        return column.tolist()
    return arrow_values(column)


def concat(columns: list[Any]) -> Any:
    """One column from the pieces of several shards (types as uniform as they allow)."""
    if len(columns) == 1:
        return columns[0]
    if all(isinstance(c, Keys) for c in columns):
        return Keys.concat(columns)
    if all(isinstance(c, np.ndarray) for c in columns):
        return np.concatenate(columns)
    if all(isinstance(c, TextColumn) for c in columns) and len({c.text for c in columns}) == 1:
        return TextColumn.concat(columns)
    return [v for c in columns for v in _as_list(c)]


def settle(column: Any) -> Any:
    """Text columns stay; Arrow arrays and lists follow the row path's batching rules."""
    if isinstance(column, (np.ndarray, Keys, TextColumn)):
        return column

    values = _as_list(column)
    kind, info = classify(values)
    if kind == "array":
        return info
    if kind == "stack":
        return np.stack(values)
    return values


def finish(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its text columns made into Python lists (the in-process path)."""
    return {k: v.values() if isinstance(v, TextColumn) else v for k, v in batch.items()}


def _column_values(col: Any) -> Any:
    """Primitive non-null columns as numpy; text columns without nulls as a
    :class:`TextColumn`; others stay Arrow arrays (made into Python values per batch or per
    row, never a whole block at a time).

    The numpy arrays are writable copies, made once per block where it is decoded (a read-ahead
    thread): batches are then plain views of them. A per-batch copy in the trainer would
    release the GIL (numpy does for copies of 500+ elements) and wait to get it back from the
    decode threads."""
    import pyarrow as pa

    t = col.type
    if col.null_count == 0 and (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    ):
        return col.to_numpy(zero_copy_only=False, writable=True)
    if arrow_text(col):
        return TextColumn.from_arrow(col)
    return col


def _take(values: Any, sel: slice | np.ndarray) -> Any:
    """``values[sel]``: rows of a numpy column (a view of the block's writable copy for a
    slice, which keeps the block's column alive while the batch lives), of a text column
    (still a :class:`TextColumn` for a slice), or of an Arrow column (still Arrow)."""
    if isinstance(values, np.ndarray):
        return values[sel]
    if isinstance(values, TextColumn):
        if isinstance(sel, slice):
            return values.slice(sel.start, sel.stop - sel.start)
        return values.take(sel)
    if isinstance(values, list):
        return values[sel] if isinstance(sel, slice) else [values[i] for i in sel.tolist()]
    if isinstance(sel, slice):
        return values.slice(sel.start, sel.stop - sel.start)
    return values.take(sel)


class ColumnBlock:
    """The decoded columns of one block of a column-wise shard (a Parquet row group, a CSV
    file), whose rows are the shard's samples ``first .. first + num_rows - 1``; the sample key
    of row ``i`` is ``<shard key>#<first + i>``."""

    def __init__(self, table: Any, shard_key: str, first: int) -> None:
        data = {
            name: _column_values(table.column(name).combine_chunks()) for name in table.column_names
        }
        self._setup(data, int(table.num_rows), shard_key, first)

    def _setup(
        self, data: dict[str, Any], num_rows: int, shard_key: str, first: int, whole: bool = False
    ) -> None:
        self.data = data
        self.num_rows = num_rows
        self.shard_key = shard_key
        self.first = first
        self._lists: dict[str, list[Any]] = {}
        #: S3 requests and bytes the block's read made in a read-ahead thread, and the seconds
        #: it took (set by the read-ahead)
        self.io: dict[str, int] = {}
        self.seconds = 0.0
        #: the block is one sample keyed by ``shard_key`` alone (see :meth:`single`)
        self._whole = whole
        #: each row's dataset-wide sample index, when :meth:`number` was called
        self.index: np.ndarray | None = None
        #: the shard's partition fields are columns of the block (``Dataset.prepare_block``)
        self.with_partitions = False

    def number(self, first_index: int) -> None:
        """Give the rows their dataset-wide sample indices (row ``i`` is ``first_index + i``),
        made once where the block is decoded: a batch inside the block then takes its
        ``__index__`` as a view. Making the array per batch in the trainer would release the
        GIL (numpy fills arrays of more than ~500 elements without it) and wait to get it back
        from the decode threads - tens of microseconds a batch."""
        self.index = np.arange(first_index, first_index + self.num_rows, dtype=np.int64)

    @classmethod
    def single(cls, key: str, fields: dict[str, Any]) -> ColumnBlock:
        """The block of one sample whose key is ``key`` itself (a raw object): list columns."""
        b = cls.__new__(cls)
        b._setup({name: [value] for name, value in fields.items()}, 1, key, 0, whole=True)
        return b

    def _values(self, name: str) -> Any:
        """Column ``name`` indexable by row (numpy, or the Arrow column as a Python list)."""
        v = self.data[name]
        if isinstance(v, (np.ndarray, list)):
            return v
        got = self._lists.get(name)
        if got is None:
            got = self._lists[name] = _as_list(v)
        return got

    def _key_part(self, rows: range | np.ndarray) -> tuple[str, range | np.ndarray | None]:
        return (self.shard_key, None) if self._whole else (f"{self.shard_key}#", rows)

    def row(self, i: int) -> tuple[str, dict[str, Any]]:
        """Row ``i``'s key and fields (the row path)."""
        key = self.shard_key if self._whole else f"{self.shard_key}#{self.first + i}"
        return key, {k: self._values(k)[i] for k in self.data}

    def take_range(self, a: int, n: int) -> tuple[Keys, dict[str, Any]]:
        """Keys and columns of the block-relative rows ``a .. a + n - 1``."""
        sel = slice(a, a + n)
        keys = Keys.runs([self._key_part(range(self.first + a, self.first + a + n))])
        return keys, {k: _take(v, sel) for k, v in self.data.items()}

    def take(self, rows: np.ndarray) -> tuple[Keys, dict[str, Any]]:
        """Keys and columns of ``rows`` (block-relative): slices when they are consecutive
        (the natural order and most of a block shuffle's runs), a gather otherwise."""
        n, a = len(rows), int(rows[0])
        if int(rows[-1]) - a + 1 == n and (n == 1 or bool((np.diff(rows) == 1).all())):
            return self.take_range(a, n)
        keys = Keys.runs([self._key_part(rows + self.first)])
        return keys, {k: _take(v, rows) for k, v in self.data.items()}
