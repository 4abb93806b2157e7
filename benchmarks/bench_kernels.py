"""Microbenchmarks of the Cython kernels against their pure-Python references.

Run with pytest-benchmark (not part of CI's pass/fail):

    python -m pytest benchmarks/bench_kernels.py --benchmark-columns=median,ops
"""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from m5stream._native import sampler, tarscan
from m5stream.formats import tar_reference
from m5stream.sampling import reference
from m5stream.sampling.order import Order

N = 10**9
POS = np.arange(10**6, 10**6 + 65536, dtype=np.int64)
KEY = 0x1234_5678_9ABC_DEF0


def test_permute_cython_64k(benchmark: pytest.FixtureRequest) -> None:
    benchmark(sampler.permute, POS, N, KEY)


def test_permute_python_4k(benchmark: pytest.FixtureRequest) -> None:
    benchmark(reference.permute, POS[:4096].tolist(), N, KEY)


def test_block_shuffle_cython_64k(benchmark: pytest.FixtureRequest) -> None:
    order = Order(np.full(10_000, 100_000), shuffle="block", seed=1, block_size=1 << 16)
    benchmark(order.indices, 3, POS)


def _archive(members: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(members):
            info = tarfile.TarInfo(f"sample{i:07d}.jpg")
            info.size = 2000 + i % 100
            tf.addfile(info, io.BytesIO(b"x" * info.size))
    return buf.getvalue()


ARCHIVE = _archive(4000)


def test_tarscan_cython_4000_members(benchmark: pytest.FixtureRequest) -> None:
    names, _, _ = benchmark(tarscan.scan, ARCHIVE)
    assert len(names) == 4000


def test_tarscan_python_4000_members(benchmark: pytest.FixtureRequest) -> None:
    names, _, _ = benchmark(tar_reference.scan, ARCHIVE)
    assert len(names) == 4000


def test_tarfile_module_4000_members(benchmark: pytest.FixtureRequest) -> None:
    def run() -> int:
        with tarfile.open(fileobj=io.BytesIO(ARCHIVE)) as tf:
            return len(tf.getmembers())

    assert benchmark(run) == 4000
