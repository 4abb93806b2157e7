"""The Cython shuffle kernels against their pure-Python reference, and their properties."""

from __future__ import annotations

import numpy as np
import pytest

from m5stream._native import sampler
from m5stream.sampling import reference as ref
from m5stream.sampling.order import SALT_BLOCKS, Order, epoch_key


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 16, 17, 100, 1000, 4097])
@pytest.mark.parametrize("key", [0, 1, 0xDEADBEEF, (1 << 64) - 1])
def test_permute_matches_reference_and_is_a_bijection(n: int, key: int) -> None:
    pos = np.arange(n, dtype=np.int64)
    out = sampler.permute(pos, n, key)
    assert out.tolist() == ref.permute(pos.tolist(), n, key)
    assert sorted(out.tolist()) == list(range(n))


def test_mix_matches_reference() -> None:
    for x in [0, 1, 12345, (1 << 63) + 7, (1 << 64) - 1]:
        assert sampler.mix(x) == ref.mix(x)


def test_permute_huge_domain_seeks_without_arrays() -> None:
    n = 10**12
    pos = np.array([0, 1, 10**6, n - 1, 123456789012], dtype=np.int64)
    key = epoch_key(17, 3, 0)
    out = sampler.permute(pos, n, key)
    assert out.tolist() == ref.permute(pos.tolist(), n, key)
    assert all(0 <= v < n for v in out.tolist())
    assert len(set(out.tolist())) == len(pos)


def test_permute_depends_on_key() -> None:
    pos = np.arange(100, dtype=np.int64)
    a = sampler.permute(pos, 100, 1)
    b = sampler.permute(pos, 100, 2)
    assert a.tolist() != b.tolist()
    assert a.tolist() != pos.tolist()


@pytest.mark.parametrize("counts", [[5, 0, 7, 3], [1], [10, 10, 10, 10], [3, 1, 4, 1, 5, 9, 2, 6]])
@pytest.mark.parametrize("block", [1, 2, 4, 7, 100])
def test_block_shuffle_matches_reference_and_is_a_bijection(counts: list[int], block: int) -> None:
    order = Order(np.array(counts), shuffle="block", seed=9, block_size=block)
    n = order.num_samples
    prefix, start = order._block_tables(4)
    pos = np.arange(n, dtype=np.int64)
    out = sampler.block_shuffle(pos, n, block, epoch_key(9, 4, SALT_BLOCKS), prefix, start)
    expect = ref.block_shuffle(
        pos.tolist(), n, block, epoch_key(9, 4, SALT_BLOCKS), prefix.tolist(), start.tolist()
    )
    assert out.tolist() == expect
    assert sorted(out.tolist()) == list(range(n))


def test_block_shuffle_rejects_zero_block() -> None:
    with pytest.raises(ValueError):
        sampler.block_shuffle(np.arange(3), 3, 0, 1, np.array([0, 3]), np.array([0]))
