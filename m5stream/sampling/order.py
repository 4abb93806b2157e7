"""The sample order: pure functions of (shard sample counts, seed, epoch, step).

Definitions (the determinism contract rests on them):

* An epoch is a sequence of *positions* ``0 .. N-1``; ``Order.indices(epoch, positions)`` maps
  positions to global sample indices.
* ``shuffle="none"``: position ``p`` is sample ``p`` (manifest order).
* ``shuffle="global"``: sample ``permute(p, N, key(seed, epoch, 0))`` - a keyed Feistel
  bijection, O(1) per position, no array of size N.
* ``shuffle="block"``: shards are visited in the order ``permute(s, S, key(seed, epoch, 1))``;
  the samples of the shards in that order are cut into blocks of ``block_size``; positions are
  permuted inside each block with ``key(seed, epoch, 2) ^ block``-derived keys. Reads stay
  within a few shards at a time.
* Global step ``t`` covers positions ``[t*G, min((t+1)*G, N))`` with ``G = batch_size *
  world_size``; with ``drop_last`` the trailing partial global batch is not part of the epoch.
* Rank ``r`` gets the ``r``-th of ``world_size`` contiguous parts of each global batch (equal
  parts for full batches; ``numpy.array_split`` parts for a final partial one).

Nothing here depends on ``num_workers``, timing or the machine.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal, Protocol

import numpy as np

from .._native import sampler
from ..errors import ConfigError

__all__ = [
    "SampleOrder",
    "Order",
    "ShuffleMode",
    "batch_indices",
    "batch_run",
    "epoch_key",
    "global_batch_bounds",
    "rank_bounds",
    "steps_per_epoch",
]

ShuffleMode = Literal["none", "global", "block"]
_M64 = (1 << 64) - 1
SALT_GLOBAL, SALT_SHARDS, SALT_BLOCKS = 0, 1, 2


def epoch_key(seed: int, epoch: int, salt: int) -> int:
    """64-bit key for one (seed, epoch, purpose)."""
    k = sampler.mix(seed & _M64)
    k = sampler.mix(k ^ (epoch & _M64))
    return int(sampler.mix(k ^ salt))


def normalize_shuffle(shuffle: bool | str) -> ShuffleMode:
    if shuffle is True:
        return "global"
    if shuffle is False or shuffle is None:
        return "none"
    if shuffle in ("none", "global", "block"):
        return shuffle  # type: ignore[return-value]
    raise ConfigError(f"shuffle must be a bool, 'global' or 'block', not {shuffle!r}")


class SampleOrder(Protocol):
    """What the batch functions below need of an order: :class:`Order`, or a mixture's
    (``m5stream.plan.mixture.MixtureOrder``, whose ``mode`` is ``"mixture"``)."""

    num_samples: int

    @property
    def mode(self) -> str: ...

    def indices(self, epoch: int, positions: np.ndarray) -> np.ndarray: ...


class Order:
    """The order of one dataset's samples for a seed; see the module docstring."""

    def __init__(
        self,
        counts: np.ndarray,
        *,
        shuffle: bool | str = False,
        seed: int = 0,
        block_size: int = 16384,
    ) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(self.counts))).astype(np.int64)
        self.num_samples = int(self.offsets[-1])
        self.mode: ShuffleMode = normalize_shuffle(shuffle)
        self.seed = int(seed)
        if block_size <= 0:
            raise ConfigError("block_size must be positive")
        self.block_size = int(block_size)
        self._block_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _block_tables(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._block_cache.get(epoch)
        if hit is None:
            s = len(self.counts)
            perm = sampler.permute(
                np.arange(s, dtype=np.int64), s, epoch_key(self.seed, epoch, SALT_SHARDS)
            )
            prefix = np.concatenate(([0], np.cumsum(self.counts[perm]))).astype(np.int64)
            hit = (prefix, self.offsets[:-1][perm].copy())
            self._block_cache[epoch] = hit
            while len(self._block_cache) > 4:
                self._block_cache.popitem(last=False)
        return hit

    def indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """Global sample indices at ``positions`` of ``epoch`` (int64 array)."""
        pos = np.ascontiguousarray(positions, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= self.num_samples):
            raise IndexError("position out of range")
        if self.mode == "none":
            return pos.copy()
        if self.mode == "global":
            return sampler.permute(pos, self.num_samples, epoch_key(self.seed, epoch, SALT_GLOBAL))
        prefix, start = self._block_tables(epoch)
        return sampler.block_shuffle(
            pos,
            self.num_samples,
            self.block_size,
            epoch_key(self.seed, epoch, SALT_BLOCKS),
            prefix,
            start,
        )


def steps_per_epoch(num_samples: int, global_batch: int, drop_last: bool) -> int:
    if global_batch <= 0:
        raise ConfigError("global batch size must be positive")
    full, rest = divmod(num_samples, global_batch)
    return full if drop_last or rest == 0 else full + 1


def global_batch_bounds(num_samples: int, global_batch: int, step: int) -> tuple[int, int]:
    start = step * global_batch
    return start, min(start + global_batch, num_samples)


def rank_bounds(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """Offsets of rank ``rank``'s contiguous part of ``n`` items (``array_split`` parts)."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def batch_run(
    order: SampleOrder,
    step: int,
    *,
    batch_size: int,
    world_size: int = 1,
    rank: int = 0,
    even: bool = False,
) -> tuple[int, int] | None:
    """``(first index, count)`` when :func:`batch_indices` of ``step`` is the run
    ``first .. first + count - 1`` - the natural order, except a padded last step - else
    ``None``. Scalar arithmetic only (the natural order's per-batch fast path)."""
    if order.mode != "none":
        return None
    g = batch_size * world_size
    start, stop = global_batch_bounds(order.num_samples, g, step)
    if even and (stop - start) % world_size:
        return None
    lo, hi = rank_bounds(stop - start, world_size, rank)
    return start + lo, hi - lo


def batch_indices(
    order: SampleOrder,
    epoch: int,
    step: int,
    *,
    batch_size: int,
    world_size: int = 1,
    rank: int = 0,
    even: bool = False,
) -> np.ndarray:
    """Global sample indices of rank ``rank``'s batch at global step ``step`` of ``epoch``.

    ``even``: a last step whose samples do not split evenly over the ranks is completed with
    the epoch's first positions (wrapping around, as ``DistributedSampler`` pads), so that
    every rank gets a batch of the same size and the same number of batches per epoch.
    """
    g = batch_size * world_size
    start, stop = global_batch_bounds(order.num_samples, g, step)
    pos = np.arange(start, stop, dtype=np.int64)
    pad = (-(stop - start)) % world_size if even else 0
    if pad:
        pos = np.concatenate((pos, np.arange(pad, dtype=np.int64) % order.num_samples))
    lo, hi = rank_bounds(len(pos), world_size, rank)
    return order.indices(epoch, pos[lo:hi])
