"""The mixture schedule of weighted multi-source training: a pure function of integers.

Contract (everything below is a function of the schedule's fields and ``step``; no I/O, no
state, nothing depends on the machine, the number of workers or timing):

* **Sources and weights.** ``sources`` is an ordered list of names; a source's *id* is its
  index in that list. ``segments`` are :class:`WeightSegment` s: the first starts at global step
  0, the ``from_step`` s strictly increase. A segment's weights are normalised to sum to 1; a
  source absent from a segment's dict has weight 0 there.
* **Units.** With ``granularity="sample"`` the unit is one sample and global step ``t`` draws
  units ``t*G .. (t+1)*G - 1`` (``G = global_batch``). With ``granularity="batch"`` the unit is
  one global batch: step ``t`` is unit ``t`` and all ``G`` samples of it come from one source.
* **Closed-form counts.** Inside one segment, the number of units source ``s`` has drawn after
  ``n`` units of that segment is ``c_s(n)``, from a fixed binary *split tree* over the sources
  of positive weight (built Huffman-style: repeatedly join the two lightest subtrees, ties by
  source order). Each internal node ``v`` with count ``n_v`` gives its lighter child
  ``L`` (ratio ``a = w_L / w_v <= 1/2``) ``floor(a * n_v + 1/2)`` units and its other child the
  rest; the root holds ``n``. Hence, for every ``n``:

  - ``sum_s c_s(n) == n`` (each split is exact);
  - ``c_s`` is non-decreasing and ``c_s(n+1) - c_s(n)`` is 0 or 1 (``a <= 1/2``);
  - ``|c_s(n) - w_s * n| < 2``. Proof: a split's rounding error is in ``(-1/2, 1/2]``; the
    error of a node is ``a * (its parent's error) + (its own rounding)``, so a leaf's error is
    at most ``1/2 * sum_i w_s / w(v_i)`` over the nodes ``v_0 = s, v_1, ..`` of its path below
    the root. In a Huffman tree ``w(v_{i+2}) >= 2 * w(v_i)`` (the sibling of ``v_{i+1}`` was
    never lighter than ``v_i``), so the sum is below ``2 * (1 + 1/2 + 1/4 + ..) = 4``.

  Evaluated in float64 (IEEE, the same in numpy and Python), for units below ``2**50``.
* **Segments carry over.** At the first step ``b`` of a segment the counts so far are frozen;
  the segment's apportionment applies to the units drawn since ``b`` and is added to them. So
  counts are continuous at every boundary and the bound holds per segment, relative to the
  units since its boundary. ``counts_at(step)`` costs O(sources x segments), never O(steps).
* **Positions of a global batch.** Unit ``u`` goes to the one source whose count steps up
  between ``u`` and ``u + 1``: within a batch the sources interleave in the order the split
  tree reaches each integer, and any ``W`` consecutive units of a segment hold
  ``w_s * W +- 4`` (strictly less) of source ``s`` - a rank's contiguous slice of a global
  batch too. After step ``t`` the per-source counts are ``counts_at(t + 1)``.
* **Draws to samples.** The ``k``-th draw (from 0, over the whole schedule) of source ``s`` is
  position ``k mod sizes[s]`` of pass ``k div sizes[s]`` of the source's own shuffle:
  ``Order([sizes[s]], shuffle="global", seed=key(seed, crc32(name)))`` at epoch ``pass``. Each
  pass is a permutation of the source's samples, each pass a different one; a source running
  out starts its next pass, it never ends the mixture.

Counts are reported in samples (``counts_at``) and in units (``unit_counts_at``); they are the
same with ``granularity="sample"``.
"""

from __future__ import annotations

import heapq
import math
import zlib
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ..config import LoaderConfig
from ..errors import ConfigError
from ..sampling import Order, epoch_key, steps_per_epoch

__all__ = [
    "Granularity",
    "MixtureOrder",
    "MixtureSchedule",
    "MixtureSources",
    "WeightSegment",
    "mixture_order",
    "source_seed",
]

Granularity = Literal["sample", "batch"]
#: the salt of a source's shuffle seed (``epoch_key(seed, crc32(name), SALT_MIXTURE)``)
SALT_MIXTURE = 0x6D69787475726521
#: units at or above this are refused (float64 keeps the splits exact well below 2**53)
MAX_UNITS = 1 << 50
STATE_VERSION = 1


@dataclass(frozen=True)
class WeightSegment:
    """Weights from global step ``from_step`` on (until the next segment's ``from_step``)."""

    from_step: int
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", dict(self.weights))


@dataclass(frozen=True)
class _Tree:
    """The split tree of one segment. ``nodes``: ``(node id, lighter child, other child,
    lighter child's share)`` of the internal nodes, parents before children; node ids
    ``< len(leaves)`` are the leaves, ``leaves[j]`` the source id of leaf ``j``."""

    leaves: tuple[int, ...]
    nodes: tuple[tuple[int, int, int, float], ...]
    root: int
    weights: tuple[float, ...]  # the normalised weight of every source (0 if absent)


def _build_tree(weights: Sequence[float]) -> _Tree:
    total = math.fsum(weights)
    norm = tuple(w / total for w in weights)
    leaves = tuple(i for i, w in enumerate(norm) if w > 0)
    # heap items: (weight, tie order, node id); leaves come first in source order
    heap: list[tuple[float, int, int]] = [(norm[s], j, j) for j, s in enumerate(leaves)]
    heapq.heapify(heap)
    joins: list[tuple[int, int, int, float]] = []
    next_id = len(leaves)
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)  # the lighter (or equal, earlier) subtree
        w2, _, b = heapq.heappop(heap)
        w = w1 + w2
        joins.append((next_id, a, b, w1 / w))
        heapq.heappush(heap, (w, next_id, next_id))
        next_id += 1
    root = heap[0][2]
    return _Tree(leaves, tuple(reversed(joins)), root, norm)


def _apportion(tree: _Tree, n: np.ndarray, num_sources: int) -> np.ndarray:
    """Counts ``c_s(n)`` of every source (rows) for the unit counts ``n`` (int64 columns)."""
    counts: dict[int, np.ndarray] = {tree.root: n}
    for node, light, heavy, ratio in tree.nodes:
        nv = counts.pop(node)
        lc = np.floor(nv.astype(np.float64) * ratio + 0.5).astype(np.int64)
        counts[light] = lc
        counts[heavy] = nv - lc
    out = np.zeros((num_sources, len(n)), dtype=np.int64)
    for j, s in enumerate(tree.leaves):
        out[s] = counts[j]
    return out


def source_seed(seed: int, name: str) -> int:
    return epoch_key(seed, zlib.crc32(name.encode("utf-8")), SALT_MIXTURE)


class MixtureSchedule:
    """Which source, and which of its samples, each position of each global batch takes."""

    def __init__(
        self,
        sources: Sequence[str],
        sizes: Mapping[str, int],
        segments: Sequence[WeightSegment],
        global_batch: int,
        granularity: Granularity = "sample",
        seed: int = 0,
        orders: Mapping[str, Order] | None = None,
    ) -> None:
        self.sources: list[str] = [str(s) for s in sources]
        if not self.sources:
            raise ConfigError("a mixture needs at least one source")
        seen: set[str] = set()
        for s in self.sources:
            if s in seen:
                raise ConfigError(f"mixture source {s!r} is listed twice")
            seen.add(s)
        self.ids: dict[str, int] = {s: i for i, s in enumerate(self.sources)}
        for s in sizes:
            if s not in self.ids:
                raise ConfigError(f"size given for unknown mixture source {s!r}")
        self.sizes: dict[str, int] = {}
        for s in self.sources:
            if s not in sizes:
                raise ConfigError(f"mixture source {s!r} has no size")
            size = sizes[s]
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
                raise ConfigError(
                    f"mixture source {s!r}: size must be a positive int, not {size!r}"
                )
            self.sizes[s] = int(size)
        if isinstance(global_batch, bool) or not isinstance(global_batch, (int, np.integer)):
            raise ConfigError(f"global_batch must be an int, not {global_batch!r}")
        if global_batch <= 0:
            raise ConfigError(f"global_batch must be positive, not {global_batch}")
        self.global_batch = int(global_batch)
        if granularity not in ("sample", "batch"):
            raise ConfigError(f"granularity must be 'sample' or 'batch', not {granularity!r}")
        self.granularity: Granularity = granularity
        self.seed = int(seed)
        #: samples per unit
        self.unit = 1 if granularity == "sample" else self.global_batch
        #: units per global step
        self.units_per_step = self.global_batch if granularity == "sample" else 1
        if not segments:
            raise ConfigError("a mixture needs at least one weight segment")
        self.segments: list[WeightSegment] = []
        self._trees: list[_Tree] = []
        self._bases: list[np.ndarray] = []  # unit counts at each segment's first step
        self._starts: list[int] = []
        self._orders: dict[int, Order] = {}
        for name, order in (orders or {}).items():
            if name not in self.ids:
                continue  # a source that is no longer drawn needs no order
            if order.num_samples != self.sizes[name]:
                raise ConfigError(
                    f"mixture source {name!r}: its order has {order.num_samples} samples, "
                    f"not {self.sizes[name]}"
                )
            self._orders[self.ids[name]] = order
        for seg in segments:
            self._append(seg)

    # -- construction ---------------------------------------------------------------------

    def _append(self, seg: WeightSegment) -> None:
        step = seg.from_step
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise ConfigError(f"segment from_step must be an int, not {step!r}")
        if not self.segments and step != 0:
            raise ConfigError(f"the first weight segment must start at step 0, not {step}")
        if self.segments and step <= self.segments[-1].from_step:
            raise ConfigError(
                f"weight segments must start at increasing steps: {step} follows "
                f"{self.segments[-1].from_step}"
            )
        raw = [0.0] * len(self.sources)
        for name, w in seg.weights.items():
            if name not in self.ids:
                raise ConfigError(
                    f"weight given for unknown mixture source {name!r} (segment from step "
                    f"{step}; sources: {', '.join(self.sources)})"
                )
            try:
                wf = float(w)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"mixture source {name!r}: weight {w!r} is not a number"
                ) from None
            if not math.isfinite(wf):
                raise ConfigError(f"mixture source {name!r}: weight {w!r} is not finite")
            if wf < 0:
                raise ConfigError(f"mixture source {name!r}: weight {w!r} is negative")
            raw[self.ids[name]] = wf
        top = max(raw)
        if not top > 0:
            raise ConfigError(f"the weight segment from step {step} has all weights zero")
        tree = _build_tree([w / top for w in raw])  # scaled first: no overflow in the sum
        if self.segments:
            prev = self.segments[-1]
            units = (int(step) - prev.from_step) * self.units_per_step
            if units >= MAX_UNITS:
                raise ConfigError(f"segment from step {step} is beyond the schedule's range")
            span = _apportion(self._trees[-1], np.array([units], dtype=np.int64), len(raw))
            base = self._bases[-1] + span[:, 0]
        else:
            base = np.zeros(len(raw), dtype=np.int64)
        self.segments.append(
            WeightSegment(int(step), {k: float(v) for k, v in seg.weights.items()})
        )
        self._trees.append(tree)
        self._bases.append(base)
        self._starts = [s.from_step for s in self.segments]

    def with_weights(self, from_step: int, weights: Mapping[str, float]) -> MixtureSchedule:
        """This schedule with a new segment of ``weights`` from ``from_step`` on (re-weighting,
        e.g. at a resume); ``from_step`` must follow the last segment's."""
        return MixtureSchedule(
            self.sources,
            self.sizes,
            [*self.segments, WeightSegment(from_step, dict(weights))],
            self.global_batch,
            self.granularity,
            self.seed,
            {self.sources[i]: o for i, o in self._orders.items()},
        )

    def weights(self, step: int) -> dict[str, float]:
        """The normalised weight of every source at ``step``."""
        tree = self._trees[self._segment(step)]
        return dict(zip(self.sources, tree.weights))

    # -- counts ---------------------------------------------------------------------------

    def _segment(self, step: int) -> int:
        if step < 0:
            raise IndexError(f"step {step} is negative")
        return bisect_right(self._starts, step) - 1

    def _units(self, steps: np.ndarray) -> np.ndarray:
        """Per-source unit counts (rows: steps, columns: source ids) after ``steps`` steps."""
        steps = np.asarray(steps, dtype=np.int64)
        out = np.empty((len(steps), len(self.sources)), dtype=np.int64)
        if len(steps) == 0:
            return out
        if steps.min() < 0:
            raise IndexError("step is negative")
        seg = np.searchsorted(np.asarray(self._starts, dtype=np.int64), steps, side="right") - 1
        for i in np.unique(seg).tolist():
            sel = seg == i
            n = (steps[sel] - self._starts[i]) * self.units_per_step
            if n.max() >= MAX_UNITS:
                raise IndexError("step is beyond the schedule's range")
            span = _apportion(self._trees[i], n, len(self.sources))
            out[sel] = (span + self._bases[i][:, None]).T
        return out

    def unit_counts_array(self, steps: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`unit_counts_at`: int64 array ``(len(steps), len(sources))``."""
        return self._units(np.asarray(steps, dtype=np.int64))

    def counts_array(self, steps: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`counts_at`: int64 array ``(len(steps), len(sources))``."""
        return self._units(np.asarray(steps, dtype=np.int64)) * self.unit

    def unit_counts_at(self, step: int) -> dict[str, int]:
        """Units (samples, or batches with ``granularity="batch"``) of each source drawn in
        steps ``0 .. step - 1``."""
        row = self._units(np.array([step], dtype=np.int64))[0]
        return dict(zip(self.sources, row.tolist()))

    def counts_at(self, step: int) -> dict[str, int]:
        """Samples of each source drawn in steps ``0 .. step - 1`` (they sum to
        ``step * global_batch``)."""
        row = self._units(np.array([step], dtype=np.int64))[0] * self.unit
        return dict(zip(self.sources, row.tolist()))

    # -- one global batch -----------------------------------------------------------------

    def batch_sources(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source id, draw number k)`` of every position of global batch ``step`` (two int64
        arrays of ``global_batch``); ``k`` counts the source's draws from the schedule's start."""
        i = self._segment(step)
        tree = self._trees[i]
        n0 = (step - self._starts[i]) * self.units_per_step
        if n0 + self.units_per_step >= MAX_UNITS:
            raise IndexError(f"step {step} is beyond the schedule's range")
        ns = np.arange(n0, n0 + self.units_per_step + 1, dtype=np.int64)
        counts = _apportion(tree, ns, len(self.sources))  # (sources, units + 1)
        steps_up = np.diff(counts, axis=1)
        src = np.argmax(steps_up, axis=0).astype(np.int64)
        cols = np.arange(self.units_per_step)
        k = (counts[src, cols] + self._bases[i][src]) * self.unit
        if self.unit > 1:  # one unit = one global batch of one source
            src = np.repeat(src, self.unit)
            k = (k[:, None] + np.arange(self.unit, dtype=np.int64)).ravel()
        return src, k

    def draw_positions(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source id, draw number k)`` of absolute sample positions (``step * global_batch
        + offset``; any order, any steps): the same as :meth:`batch_sources` of their steps,
        at O(sources) array work per position."""
        u = np.asarray(positions, dtype=np.int64)
        src = np.empty(len(u), dtype=np.int64)
        k = np.empty(len(u), dtype=np.int64)
        if len(u) == 0:
            return src, k
        if u.min() < 0:
            raise IndexError("position is negative")
        steps, within = np.divmod(u, self.global_batch)
        seg = np.searchsorted(np.asarray(self._starts, dtype=np.int64), steps, side="right") - 1
        for i in np.unique(seg).tolist():
            sel = np.flatnonzero(seg == i)
            since = steps[sel] - self._starts[i]
            n = since * self.global_batch + within[sel] if self.unit == 1 else since
            if n.max() + 1 >= MAX_UNITS:
                raise IndexError("position is beyond the schedule's range")
            both = _apportion(self._trees[i], np.concatenate((n, n + 1)), len(self.sources))
            c0, c1 = both[:, : len(n)], both[:, len(n) :]
            s = np.argmax(c1 - c0, axis=0).astype(np.int64)
            cols = np.arange(len(n))
            src[sel] = s
            k[sel] = (c0[s, cols] + self._bases[i][s]) * self.unit
            if self.unit > 1:
                k[sel] += within[sel]
        return src, k

    def _source_id(self, source: str | int) -> int:
        if isinstance(source, str):
            if source not in self.ids:
                raise KeyError(f"unknown mixture source {source!r}")
            return self.ids[source]
        sid = int(source)
        if not 0 <= sid < len(self.sources):
            raise KeyError(f"no mixture source with id {sid}")
        return sid

    def source_index(self, source: str | int, k: int) -> tuple[int, int]:
        """``(pass, position)`` of the ``k``-th draw of ``source`` in its own shuffle."""
        if k < 0:
            raise IndexError(f"draw number {k} is negative")
        return divmod(int(k), self.sizes[self.sources[self._source_id(source)]])

    def _order(self, sid: int) -> Order:
        hit = self._orders.get(sid)
        if hit is None:
            name = self.sources[sid]
            hit = Order(
                np.array([self.sizes[name]], dtype=np.int64),
                shuffle="global",
                seed=source_seed(self.seed, name),
            )
            self._orders[sid] = hit
        return hit

    def sample_indices(self, source: str | int, k: np.ndarray) -> np.ndarray:
        """Sample indices, within ``source``, of its draws ``k`` (int64)."""
        sid = self._source_id(source)
        k = np.asarray(k, dtype=np.int64)
        out = np.empty(len(k), dtype=np.int64)
        if len(k) == 0:
            return out
        if k.min() < 0:
            raise IndexError("draw number is negative")
        passes, pos = np.divmod(k, self.sizes[self.sources[sid]])
        order = self._order(sid)
        for p in np.unique(passes).tolist():
            sel = passes == p
            out[sel] = order.indices(p, pos[sel])
        return out

    def draw_indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source id, sample index within that source)`` of every position of global batch
        ``step`` (two int64 arrays of ``global_batch``)."""
        src, k = self.batch_sources(step)
        idx = np.empty_like(k)
        for sid in np.unique(src).tolist():
            sel = src == sid
            idx[sel] = self.sample_indices(sid, k[sel])
        return src, idx

    # -- state ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable description; :meth:`from_state` rebuilds the same schedule."""
        return {
            "version": STATE_VERSION,
            "sources": list(self.sources),
            "sizes": dict(self.sizes),
            "segments": [[s.from_step, dict(s.weights)] for s in self.segments],
            "global_batch": self.global_batch,
            "granularity": self.granularity,
            "seed": self.seed,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MixtureSchedule:
        version = state.get("version")
        if version != STATE_VERSION:
            raise ConfigError(f"mixture state version {version!r} is not {STATE_VERSION}")
        try:
            return cls(
                list(state["sources"]),
                dict(state["sizes"]),
                [WeightSegment(int(f), dict(w)) for f, w in state["segments"]],
                int(state["global_batch"]),
                state["granularity"],
                int(state["seed"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"malformed mixture state: {e!r}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MixtureSchedule):
            return NotImplemented
        return self.to_state() == other.to_state()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MixtureSchedule(sources={self.sources!r}, segments={len(self.segments)}, "
            f"global_batch={self.global_batch}, granularity={self.granularity!r})"
        )


class MixtureOrder:
    """A mixture's order in the shape of :class:`~m5stream.sampling.Order`: position ``p`` of
    epoch ``e`` is absolute position ``e * num_samples + p`` of the schedule, so epochs
    continue the sources' draws (and the weight segments count global steps across epochs).
    Its indices are *global* mixture indices: source ``s``'s sample ``i`` is ``offsets[s] + i``
    (``offsets[s] < 0``: the source is in the schedule only for its past, and drawing it is an
    error). Every step is a full global batch: the schedule never runs out."""

    mode = "mixture"

    def __init__(
        self, schedule: MixtureSchedule, offsets: Mapping[str, int], epoch_steps: int
    ) -> None:
        if epoch_steps <= 0:
            raise ConfigError(f"a mixture epoch needs at least one step, not {epoch_steps}")
        self.schedule = schedule
        self.epoch_steps = int(epoch_steps)
        self.num_samples = self.epoch_steps * schedule.global_batch
        self.block_size = 0
        self.seed = schedule.seed
        self._offsets = np.array([int(offsets.get(s, -1)) for s in schedule.sources], np.int64)

    def draws(self, epoch: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source id, index within the source)`` at ``positions`` of ``epoch``."""
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= self.num_samples):
            raise IndexError("position out of range")
        sch = self.schedule
        src, k = sch.draw_positions(pos + int(epoch) * self.num_samples)
        idx = np.empty_like(k)
        for sid in np.unique(src).tolist():
            sel = src == sid
            idx[sel] = sch.sample_indices(sid, k[sel])
        return src, idx

    def indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """Global mixture indices at ``positions`` of ``epoch`` (int64)."""
        src, idx = self.draws(epoch, positions)
        base = self._offsets[src]
        if len(base) and base.min() < 0:
            gone = sorted({self.schedule.sources[s] for s in src[base < 0].tolist()})
            raise ConfigError(f"the schedule draws mixture source(s) {gone} that are not given")
        return base + idx


class MixtureSources(Protocol):
    """What the plan knows of a mixture's sources (an ``m5stream.mixing.Mixture``): names,
    sizes and shard counts, never their data."""

    names: list[str]
    weights: dict[str, float]
    granularity: Granularity
    epoch_samples: int
    #: global index of each source's first sample
    offsets: dict[str, int]
    #: samples per shard of each source
    shard_counts: dict[str, np.ndarray]

    @property
    def sizes(self) -> dict[str, int]: ...


def mixture_order(
    config: LoaderConfig,
    mixture: MixtureSources,
    saved: MixtureSchedule | None = None,
    reweight: tuple[int, Mapping[str, float]] | None = None,
) -> MixtureOrder:
    """The order ``config`` defines over ``mixture``.

    Without ``saved`` the schedule is one segment of the mixture's weights from step 0.
    ``saved`` (a resumed state's schedule) is kept as it is - its past is what was trained on
    - and ``reweight=(from_step, weights)`` appends a segment: sources of ``mixture`` the
    saved schedule lacks are added (drawn from ``from_step`` on), and sources it has that
    ``mixture`` lacks stay in the schedule with weight 0 (their past draws are its history).
    Within a source the order is ``config``'s shuffle over that source's shards, keyed by
    :func:`source_seed`; a mixture epoch is ``epoch_samples`` rounded to whole global batches
    (down with ``drop_last``, else up; at least one)."""
    g = config.global_batch_size
    if saved is None:
        names, sizes = list(mixture.names), mixture.sizes
        segments = [WeightSegment(0, mixture.weights)]
    else:
        if saved.global_batch != g or saved.granularity != mixture.granularity:
            raise ConfigError(
                f"the saved mixture schedule is for global batch {saved.global_batch}, "
                f"granularity {saved.granularity!r}; this loader has {g}, "
                f"{mixture.granularity!r}"
            )
        names = [*saved.sources, *[n for n in mixture.names if n not in saved.ids]]
        sizes = {**saved.sizes, **{n: v for n, v in mixture.sizes.items() if n not in saved.ids}}
        segments = list(saved.segments)
        if reweight is not None:
            step, weights = reweight
            w = {n: float(weights.get(n, 0.0)) for n in names}
            if segments[-1].from_step == step:
                segments[-1] = WeightSegment(step, w)  # re-weighting the same step again
            else:
                segments.append(WeightSegment(step, w))
    orders = {
        n: Order(
            mixture.shard_counts[n],
            shuffle=config.shuffle,
            seed=source_seed(config.seed, n),
            block_size=config.block_size,
        )
        for n in mixture.names
    }
    schedule = MixtureSchedule(names, sizes, segments, g, mixture.granularity, config.seed, orders)
    steps = max(1, steps_per_epoch(mixture.epoch_samples, g, config.drop_last))
    return MixtureOrder(schedule, mixture.offsets, steps)
