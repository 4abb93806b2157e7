# cython: language_level=3
"""Seekable shuffles: an O(1) bijection on ``[0, n)`` and a shard-local block shuffle.

The bijection is a 6-round balanced Feistel network on the smallest even number of bits that
covers ``n``, made to stay in range by cycle walking (re-applying the network until the value
falls below ``n``; the domain is < 4n so that takes < 4 rounds on average). Position ``p`` of an
epoch maps to a sample index without any array of size ``n``, so seeking to step 10^6 of a
10^9-sample epoch costs the same as step 0.

Every function here has a bit-exact pure-Python twin in ``m5stream.sampling.reference``; the
tests run both on the same inputs.
"""
from libc.stdint cimport int64_t, uint64_t

import numpy as np

cdef enum:
    ROUNDS = 6


cdef uint64_t splitmix64(uint64_t x) noexcept nogil:
    # Stafford's mix13 finaliser as used by splitmix64: a cheap, well-distributed 64-bit hash.
    x = x + <uint64_t>0x9E3779B97F4A7C15ULL
    x = (x ^ (x >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    x = (x ^ (x >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return x ^ (x >> 31)


cdef uint64_t feistel_round_trip(uint64_t x, int half_bits, uint64_t key) noexcept nogil:
    cdef uint64_t mask = ((<uint64_t>1) << half_bits) - 1
    cdef uint64_t left = x >> half_bits
    cdef uint64_t right = x & mask
    cdef uint64_t tmp
    cdef int i
    for i in range(ROUNDS):
        tmp = right
        right = left ^ (splitmix64(right ^ splitmix64(key + <uint64_t>i)) & mask)
        left = tmp
    return (left << half_bits) | right


cdef inline int _half_bits(uint64_t n) noexcept nogil:
    # Smallest h >= 1 with 4**h >= n.
    cdef int bits = 0
    cdef uint64_t m = n - 1
    while m:
        bits += 1
        m >>= 1
    if bits < 2:
        return 1
    return (bits + 1) // 2


cdef uint64_t permute_one(uint64_t x, uint64_t n, uint64_t key) noexcept nogil:
    if n <= 1:
        return 0
    cdef int h = _half_bits(n)
    cdef uint64_t y = feistel_round_trip(x, h, key)
    while y >= n:
        y = feistel_round_trip(y, h, key)
    return y


cdef void permute_kernel(const int64_t[::1] pos, int64_t[::1] out,
                         uint64_t n, uint64_t key) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(pos.shape[0]):
        out[i] = <int64_t>permute_one(<uint64_t>pos[i], n, key)


cdef inline Py_ssize_t _upper_bound(const int64_t[::1] a, int64_t v) noexcept nogil:
    # Index of the last element <= v (a is sorted ascending, a[0] == 0 <= v).
    cdef Py_ssize_t lo = 0, hi = a.shape[0], mid
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if a[mid] <= v:
            lo = mid
        else:
            hi = mid
    return lo


cdef void block_shuffle_kernel(const int64_t[::1] pos, int64_t[::1] out, uint64_t n,
                               uint64_t block, uint64_t key,
                               const int64_t[::1] perm_prefix,
                               const int64_t[::1] perm_start) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef uint64_t p, b, start, size, q
    for i in range(pos.shape[0]):
        p = <uint64_t>pos[i]
        b = p // block
        start = b * block
        size = n - start
        if size > block:
            size = block
        q = start + permute_one(p - start, size, splitmix64(key ^ b))
        k = _upper_bound(perm_prefix, <int64_t>q)
        out[i] = perm_start[k] + (<int64_t>q - perm_prefix[k])


def mix(uint64_t x):
    """splitmix64 of ``x`` (used to derive keys)."""
    return splitmix64(x)


def permute(positions, uint64_t n, uint64_t key):
    """Map each position in ``[0, n)`` through the keyed bijection; returns int64 array."""
    cdef const int64_t[::1] pos = np.ascontiguousarray(positions, dtype=np.int64)
    out = np.empty(pos.shape[0], dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        permute_kernel(pos, o, n, key)
    return out


def block_shuffle(positions, uint64_t n, uint64_t block, uint64_t key,
                  perm_prefix, perm_start):
    """Shard-local block shuffle (see ``m5stream.sampling.order`` for the definition)."""
    cdef const int64_t[::1] pos = np.ascontiguousarray(positions, dtype=np.int64)
    cdef const int64_t[::1] pp = np.ascontiguousarray(perm_prefix, dtype=np.int64)
    cdef const int64_t[::1] ps = np.ascontiguousarray(perm_start, dtype=np.int64)
    if block == 0:
        raise ValueError("block must be positive")
    out = np.empty(pos.shape[0], dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        block_shuffle_kernel(pos, o, n, block, key, pp, ps)
    return out
