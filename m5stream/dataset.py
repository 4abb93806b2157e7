"""``Dataset``: random access to the samples of a manifest.

``len(ds)`` samples, ``ds[i]`` the sample with global index ``i``; runs of samples read column
by column out of decoded blocks (``read_segments``, ``read_columns``). A Dataset pickles as its
manifest and options; each process opens its own shard readers lazily and keeps a small LRU of
them, so workers never share file descriptors. Reading one sample (``ds[i]``, ``read_at``) is
safe from several threads at once (a consumer's thread pool): a shard reader holds one decoded
block and one file position, so reads through the readers take turns.

Between the formats and the execution layer: samples are read through the formats' shard
readers. :func:`m5stream.dataset` (in :mod:`m5stream.source`) makes one from a source.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from .batches.columns import ColumnBlock, Keys, concat, settle
from .catalog.glue import partition_value
from .catalog.manifest import Manifest, ShardInfo
from .errors import ConfigError, CorruptData, M5Error
from .formats import Sample, ShardReader, get_format
from .storage.blobs import is_s3
from .storage.s3 import S3Config

__all__ = ["Dataset"]

# Readers hold an open file and an index (tar/JSONL) or one decoded row group (Parquet): a global
# shuffle touches many shards per batch, so keep enough of them to avoid reopening per sample.
_OPEN_READERS = 32


def _reorder(column: Any, order: np.ndarray) -> Any:
    """``column`` (numpy, a list, or an Arrow or text column's ``take``) in the row order
    ``order``."""
    if isinstance(column, np.ndarray):
        return column[order]
    if isinstance(column, list):
        return [column[i] for i in order.tolist()]
    return column.take(order)


def _constant(value: Any, n: int) -> Any:
    """``n`` copies of a partition value as the row path would batch them."""
    if isinstance(value, (bool, int, float)):
        return np.full(n, value, dtype=np.asarray(value).dtype)
    return [value] * n


class Dataset:
    """Random access to the samples of a manifest (see module docstring)."""

    def __init__(self, manifest: Manifest, s3: S3Config | None = None) -> None:
        self.manifest = manifest
        self.s3 = s3
        self.format = get_format(manifest.format)
        #: file row of each selected sample, per shard (a row filter), else ``None``
        self._rows = manifest.rows
        #: what executors may do with this dataset: the format's capabilities, less the
        #: column-block paths when a row filter selects rows (a run of samples is then not a
        #: run of rows; samples are read one by one, through the selection)
        self.caps = (
            self.format.caps
            if self._rows is None
            else replace(self.format.caps, columnar=False, block_reads=False)
        )
        self._readers: OrderedDict[int, ShardReader] = OrderedDict()
        #: uncontended in the loader's own paths (one reading thread per process)
        self._read_lock = threading.Lock()
        opts = manifest.options
        keys = opts.get("partition_keys") or []
        wanted = opts.get("partition_columns")
        # (name, type, position in the shard's values) of the partition keys samples carry
        self._pkeys = [
            (k["name"], k["type"], i)
            for i, k in enumerate(keys)
            if wanted is None or k["name"] in wanted
        ]
        self._pvalues: dict[int, dict[str, Any]] = {}
        self._units: dict[int, Any] = {}
        self._unit_lists: dict[int, list[int]] = {}
        self._offsets_list: list[int] | None = None
        #: what ``Format.prefetch`` fetched for the current batch: uri -> payload or error
        self._prefetched: dict[str, Any] = {}
        #: fetches started for later batches (``prefetch_ahead``), by the shards they cover
        self._ahead: OrderedDict[tuple[int, ...], Callable[[], dict[str, Any]]] = OrderedDict()

    def locality(self, index: int) -> tuple[int, int] | None:
        """``(shard, decode unit)`` of sample ``index`` where reading it decodes a whole unit
        (a Parquet row group); ``None`` for formats without such units."""
        if not self.format.caps.decode_units:
            return None
        shard, local = self.manifest.locate(int(index))
        if self._rows is not None:
            local = int(self._rows[shard][local])
        starts = self._unit_starts(shard)
        if starts is None:
            return None
        return shard, int(np.searchsorted(starts, local, side="right")) - 1

    def _unit_starts(self, shard: int) -> np.ndarray | None:
        """First rows of ``shard``'s decode units (``None``: the shard is one unit)."""
        starts = self._units.get(shard, False)
        if starts is False:
            starts = self._units[shard] = self.format.unit_starts(
                self.manifest.shard(shard, self.s3), self.manifest.options
            )
        return starts

    def unit_rows(self) -> int | None:
        """Rows in the first decode unit of the first shard (``None``: no units)."""
        if not self.manifest.num_shards or self.locality(0) is None:
            return None
        starts = self._units[0]
        return int(starts[1]) if len(starts) > 1 else int(self.manifest.counts[0])

    @property
    def downloads_ahead(self) -> bool:
        """Whether workers read shards of this dataset whole, downloaded from S3 into the
        shard cache (``caps.whole_shard_fetch`` on S3): the processes executor then downloads
        them ahead, in plan order (:meth:`shard_download`)."""
        return self.format.caps.whole_shard_fetch and is_s3(self.manifest.root)

    def shard_download(self, shard: int) -> ShardInfo | None:
        """Shard ``shard`` (with its S3 settings) when a worker would download it whole,
        else ``None``."""
        return self.manifest.shard(shard, self.s3) if self.downloads_ahead else None

    def partition_fields(self, shard: int) -> dict[str, Any]:
        """The partition key fields of shard ``shard``'s samples (Glue tables; else empty)."""
        got = self._pvalues.get(shard)
        if got is None:
            raw = self.manifest.options["partition_values"][shard]
            got = self._pvalues[shard] = {n: partition_value(raw[i], t) for n, t, i in self._pkeys}
        return got

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    def __len__(self) -> int:
        return self.manifest.num_samples

    def _reader(self, shard: int) -> ShardReader:
        r = self._readers.get(shard)
        if r is not None:
            self._readers.move_to_end(shard)
            return r
        r = self.format.open(self.manifest.shard(shard, self.s3), self.manifest.options)
        self._readers[shard] = r
        while len(self._readers) > _OPEN_READERS:
            _, old = self._readers.popitem(last=False)
            old.close()
        return r

    def get(self, index: int) -> Sample:
        """The sample with global index ``index``: its fields plus ``__key__``/``__index__``."""
        shard, local = self.manifest.locate(int(index))
        return self.read_at(int(index), shard, local)

    def locate_many(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`Manifest.locate`: (shard numbers, indices within the shards)."""
        idx = np.asarray(indices, dtype=np.int64)
        offsets = self.manifest.offsets
        if len(idx) and (idx.min() < 0 or idx.max() >= offsets[-1]):
            raise IndexError(f"sample index out of range [0, {int(offsets[-1])})")
        shards = np.searchsorted(offsets, idx, side="right") - 1
        return shards, idx - offsets[shards]

    #: batches whose fetches may be started ahead (a worker's next tasks)
    AHEAD = 2

    def prefetch(self, shards: np.ndarray) -> None:
        """Let the format fetch what a batch touching ``shards`` needs, all at once (or take
        what :meth:`prefetch_ahead` started for those shards)."""
        if not self.format.caps.batch_fetch:
            return  # nothing to fetch ahead: keep the per-batch hot path free of it
        key = tuple(dict.fromkeys(shards.tolist()))
        started = self._ahead.pop(key, None)
        if started is not None:
            self._prefetched = started()
            return
        m = self.manifest
        self._prefetched = self.format.prefetch([m.shard(s, self.s3) for s in key])

    def prefetch_ahead(self, shards: np.ndarray) -> None:
        """Start fetching, without waiting, what a later batch touching ``shards`` needs (a
        worker's next task, while it works on this one); its :meth:`prefetch` takes it. At
        most :attr:`AHEAD` are kept: the oldest beyond that is waited for and dropped."""
        if not self.format.caps.batch_fetch:
            return
        key = tuple(dict.fromkeys(shards.tolist()))
        if key in self._ahead:
            return
        m = self.manifest
        started = self.format.start_prefetch([m.shard(s, self.s3) for s in key])
        if started is None:
            return
        self._ahead[key] = started
        while len(self._ahead) > self.AHEAD:
            _, old = self._ahead.popitem(last=False)
            old()  # its requests end before their buffers are let go

    def read_at(self, index: int, shard: int, local: int) -> Sample:
        """The sample ``index`` already located at ``(shard, local)`` (see locate_many)."""
        try:
            with self._read_lock:
                got = (
                    self._prefetched.pop(self.manifest.uri(shard), None)
                    if self._prefetched
                    else None
                )
                reader = self._reader(shard)
                if self._rows is not None:
                    local = int(self._rows[shard][local])
                key, fields = reader.read(local) if got is None else reader.read_fetched(local, got)
        except M5Error as exc:
            exc.add_context(uri=self.manifest.uri(shard), index=int(index))
            raise
        if self._pkeys:
            fields.update(self.partition_fields(shard))
        fields["__key__"] = key
        fields["__index__"] = int(index)
        return fields

    def units_of(self, shards: np.ndarray, locals_: np.ndarray) -> np.ndarray:
        """The decode unit (Parquet row group; 0 for a format that decodes whole shards) of
        each located sample."""
        units = np.zeros(len(shards), dtype=np.int64)
        if not self.format.caps.decode_units or not len(shards):
            return units
        sh = np.asarray(shards)
        first, last = int(sh[0]), int(sh[-1])
        if first == last and bool((sh == first).all()):
            return self._unit_index(first, np.asarray(locals_))
        for shard in np.unique(sh).tolist():
            mask = sh == shard
            units[mask] = self._unit_index(shard, np.asarray(locals_)[mask])
        return units

    def _unit_list(self, shard: int) -> list[int]:
        """First rows of ``shard``'s decode units, plus its row count, as Python ints."""
        got = self._unit_lists.get(shard)
        if got is None:
            starts = self._unit_starts(shard)
            got = [0] if starts is None else [int(x) for x in starts]
            got.append(int(self.manifest.counts[shard]))
            self._unit_lists[shard] = got
        return got

    def segments(self, start: int, count: int) -> list[tuple[int, int, int, int]]:
        """The consecutive samples ``start .. start + count - 1`` as ``(shard, unit, first
        local, count)`` runs, one per decode unit they touch (scalar arithmetic: the natural
        order's batches skip the array work of :meth:`locate_many` / :meth:`units_of`)."""
        offsets = self._offsets_list
        if offsets is None:
            offsets = self._offsets_list = self.manifest.offsets.tolist()
        if start < 0 or count < 0 or start + count > offsets[-1]:
            raise IndexError(f"sample index out of range [0, {offsets[-1]})")
        out = []
        shard = bisect.bisect_right(offsets, start) - 1
        while count > 0:
            while offsets[shard + 1] <= start:
                shard += 1
            local = start - offsets[shard]
            bounds = self._unit_list(shard)
            unit = bisect.bisect_right(bounds, local) - 1
            n = min(count, bounds[unit + 1] - local)
            out.append((shard, unit, local, n))
            start += n
            count -= n
        return out

    def _unit_index(self, shard: int, locals_: np.ndarray) -> np.ndarray:
        starts = self._unit_starts(shard)
        if starts is None:
            return np.zeros(len(locals_), dtype=np.int64)
        return np.searchsorted(starts, locals_, side="right").astype(np.int64) - 1

    def fetch_unit(self, shard: int, unit: int) -> Any:
        """Start fetching decode unit ``unit`` of ``shard`` (see ``ShardReader.fetch_unit``)."""
        return self._reader(shard).fetch_unit(unit)

    def block(self, shard: int, unit: int, local: int) -> ColumnBlock:
        """The decoded unit holding sample ``local`` of ``shard`` (this process's reader)."""
        try:
            got = self._reader(shard).block_at(local)
        except M5Error as exc:
            exc.add_context(uri=self.manifest.uri(shard))
            raise
        if got is None:
            raise ConfigError(f"format {self.format.name!r} is not read column-wise")
        return got

    def prepare_block(self, shard: int, block: ColumnBlock) -> None:
        """Ready a block for the Loader's block path where it is decoded (a read-ahead
        thread): its rows' dataset-wide indices and the shard's partition fields become
        arrays of the block, which a batch takes as slices (``ColumnBlock.number`` says why
        they are not made per batch)."""
        if block.num_rows > 1:  # a batch of one row makes its one index itself
            block.number(int(self.manifest.offsets[shard]) + block.first)
        if self._pkeys and block.num_rows:
            for name, value in self.partition_fields(shard).items():
                block.data[name] = _constant(value, block.num_rows)
            block.with_partitions = True

    def read_segments(
        self,
        indices: np.ndarray | tuple[int, int],
        segments: list[tuple[int, int, int, int]],
        blocks: Callable[[int, int, int], ColumnBlock] | None = None,
    ) -> dict[str, Any] | None:
        """:meth:`read_columns` of consecutive samples given as :meth:`segments`; ``indices``
        may be their ``(first, count)``. A batch inside one block that carries its rows'
        indices (``ColumnBlock.number``) takes ``__index__`` as a view of them."""
        if not segments or not self.caps.block_reads:
            return None
        get = blocks or self.block
        keys: list[Keys] = []
        parts: list[dict[str, Any]] = []
        for shard, unit, local, n in segments:
            block = get(shard, unit, local)
            k, cols = self._piece(shard, block, range(local, local + n))
            keys.append(k)
            parts.append(cols)
        if isinstance(indices, tuple):
            first, count = indices
            if len(segments) == 1 and block.index is not None:  # the one block's numbers
                start = first - int(block.index[0])
                indices = block.index[start : start + count]
            else:
                indices = np.arange(first, first + count, dtype=np.int64)
        return self._join(indices, keys, parts, None)

    def _piece(
        self, shard: int, block: ColumnBlock, rows: range | np.ndarray
    ) -> tuple[Keys, dict[str, Any]]:
        """Rows ``rows`` (shard-local: a run, or any) of ``block``, with the shard's partition
        fields; rows beyond the block mean the file changed since the manifest was made."""
        if isinstance(rows, range):
            lo, hi = rows.start, rows.stop - 1
        else:
            lo, hi = int(rows.min()), int(rows.max())
        if lo < block.first or hi >= block.first + block.num_rows:
            raise CorruptData(
                f"record {hi} is beyond what the file holds: it changed since the manifest "
                "was made",
                uri=self.manifest.uri(shard),
            )
        if isinstance(rows, range):
            k, cols = block.take_range(lo - block.first, len(rows))
        else:
            k, cols = block.take(rows - block.first)
        if self._pkeys and not block.with_partitions:
            cols = dict(cols)
            for name, value in self.partition_fields(shard).items():
                cols[name] = _constant(value, len(rows))
        return k, cols

    def _join(
        self,
        indices: np.ndarray,
        keys: list[Keys],
        parts: list[dict[str, Any]],
        inverse: np.ndarray | None,
    ) -> dict[str, Any]:
        if len(parts) == 1:  # most batches: inside one block
            batch = {k: settle(v) for k, v in parts[0].items()}
            key_col = keys[0]
        else:
            names = list(parts[0])
            if any(list(p) != names for p in parts):
                raise CorruptData(
                    f"shards of one batch have different fields: {[list(p) for p in parts]}"
                )
            batch = {k: settle(concat([p[k] for p in parts])) for k in names}
            key_col = Keys.concat(keys)
        if inverse is not None:
            batch = {k: _reorder(v, inverse) for k, v in batch.items()}
            key_col = Keys([key_col[i] for i in inverse.tolist()])
        batch["__index__"] = np.asarray(indices, dtype=np.int64)
        batch["__key__"] = key_col
        return batch

    def read_columns(
        self,
        indices: np.ndarray,
        shards: np.ndarray,
        locals_: np.ndarray,
        blocks: Callable[[int, int, int], ColumnBlock] | None = None,
        units: np.ndarray | None = None,
    ) -> dict[str, Any] | None:
        """The batch of ``indices`` (located by :meth:`locate_many`) as columns, sliced out of
        decoded units (``blocks(shard, unit, local)``, by default this process's readers): the
        batch :func:`~m5stream.batches.assemble_rows` would make from ``read_at`` of
        each, without a dict per sample. ``None`` when the format is not columnar."""
        n = len(indices)
        caps = self.caps
        if n == 0 or not (caps.columnar or (blocks and caps.block_reads)):
            return None
        get = blocks or self.block
        sh = np.asarray(shards, dtype=np.int64)
        loc = np.asarray(locals_, dtype=np.int64)
        un = self.units_of(sh, loc) if units is None else units
        group = sh * (int(un.max()) + 1) + un
        cuts = np.flatnonzero(np.diff(group)) + 1
        inverse = None
        if len(cuts) >= 1 and len(np.unique(group)) <= len(cuts):
            # a unit's rows come back in several runs (a block shuffle across units): read
            # each unit once, in sorted order, and put the rows back in the batch's order
            order = np.argsort(group, kind="stable")
            inverse = np.empty_like(order)
            inverse[order] = np.arange(n, dtype=order.dtype)
            sh, loc, un, group = sh[order], loc[order], un[order], group[order]
            cuts = np.flatnonzero(np.diff(group)) + 1
        keys: list[Keys] = []
        parts: list[dict[str, Any]] = []
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), n]):
            shard = int(sh[a])
            block = get(shard, int(un[a]), int(loc[a]))
            k, cols = self._piece(shard, block, loc[a:b])
            keys.append(k)
            parts.append(cols)
        return self._join(indices, keys, parts, inverse)

    __getitem__ = get

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()
        while self._ahead:
            _, started = self._ahead.popitem(last=False)
            started()

    def __getstate__(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "s3": self.s3}  # no credentials in either

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["manifest"], state.get("s3"))  # type: ignore[misc]

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Dataset({m.source!r}, format={m.format!r}, samples={len(self)}, "
            f"shards={m.num_shards}, fingerprint={m.fingerprint[:12]})"
        )
