"""Pure-Python reference of the Cython sampling kernels (``m5stream._native.sampler``).

Bit-exact twins: the tests feed both the same positions and keys and require equal outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

M64 = (1 << 64) - 1
ROUNDS = 6


def mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _half_bits(n: int) -> int:
    bits = (n - 1).bit_length()
    return 1 if bits < 2 else (bits + 1) // 2


def _feistel(x: int, h: int, key: int) -> int:
    mask = (1 << h) - 1
    left, right = x >> h, x & mask
    for i in range(ROUNDS):
        left, right = right, left ^ (mix(right ^ mix((key + i) & M64)) & mask)
    return (left << h) | right


def permute_one(x: int, n: int, key: int) -> int:
    if n <= 1:
        return 0
    h = _half_bits(n)
    y = _feistel(x, h, key)
    while y >= n:
        y = _feistel(y, h, key)
    return y


def permute(positions: Sequence[int], n: int, key: int) -> list[int]:
    return [permute_one(int(p), n, key) for p in positions]


def block_shuffle(
    positions: Sequence[int],
    n: int,
    block: int,
    key: int,
    perm_prefix: Sequence[int],
    perm_start: Sequence[int],
) -> list[int]:
    out = []
    for p in positions:
        p = int(p)
        b = p // block
        start = b * block
        size = min(block, n - start)
        q = start + permute_one(p - start, size, mix(key ^ b))
        k = max(i for i in range(len(perm_prefix)) if perm_prefix[i] <= q)
        out.append(int(perm_start[k]) + (q - int(perm_prefix[k])))
    return out
