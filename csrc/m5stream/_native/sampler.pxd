# Declarations of the seekable-shuffle kernels (implemented in sampler.pyx).
from libc.stdint cimport int64_t, uint64_t

cdef uint64_t splitmix64(uint64_t x) noexcept nogil
cdef uint64_t feistel_round_trip(uint64_t x, int half_bits, uint64_t key) noexcept nogil
cdef uint64_t permute_one(uint64_t x, uint64_t n, uint64_t key) noexcept nogil
cdef void permute_kernel(const int64_t[::1] pos, int64_t[::1] out,
                         uint64_t n, uint64_t key) noexcept nogil
cdef void block_shuffle_kernel(const int64_t[::1] pos, int64_t[::1] out, uint64_t n,
                               uint64_t block, uint64_t key,
                               const int64_t[::1] perm_prefix,
                               const int64_t[::1] perm_start) noexcept nogil
