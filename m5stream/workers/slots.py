"""Shared-memory batch slots: a ring of reusable, pre-faulted buffers in one ``memfd``.

Layout: ``num_slots`` slots of ``slot_bytes`` each (a multiple of 64 KiB) back to back in one
anonymous ``memfd_create`` file; slot ``i`` starts at byte ``i * slot_bytes``. Inside a slot the
worker lays out the batch's fields at 64-byte-aligned offsets (``m5stream.batches.write_rows``).

Ownership: the trainer creates the ring and is the only one to hand out slots. A slot belongs
to exactly one party at a time: *free* (trainer), *writing* (the worker it was sent to, until
its DONE/ERROR reply), *leased* (the delivered batch: numpy views of the slot keep a
:class:`Lease` alive; when the last view is gone the lease's finaliser returns the slot). With
``copy=True`` the trainer copies out and frees the slot at once.

Lifetime: a memfd has no name in any filesystem (nothing in ``/dev/shm``); its memory is freed
when the last descriptor and mapping close, i.e. when the trainer and every worker have exited,
whichever way they exit (``kill -9`` included). Workers receive the descriptor over their pipe
(``SCM_RIGHTS``) and map it ``MAP_SHARED | MAP_POPULATE`` so steady-state writes take no page
faults. A ring that is too small is replaced by a larger one; the old ring's memory goes away
with its last lease.
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections import deque
from collections.abc import Callable

import numpy as np

__all__ = ["Lease", "RingManager", "SlotRing"]

_ALIGN = 64 * 1024
_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def round_up(n: int, align: int = _ALIGN) -> int:
    return max(align, (n + align - 1) // align * align)


class Lease(np.ndarray):
    """Marker array type: numpy stops collapsing view chains at a different type, so every
    field view of a delivered batch keeps its slot's Lease alive (and so the slot leased)."""


def _allocate(fd: int, nbytes: int) -> None:
    """Allocate (and zero) the memfd's pages now, without mapping them: the workers' first
    writes then take no allocation, and this costs no lock any mapping process holds."""
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError:
        pass  # not supported here: pages are allocated on first touch instead


class SlotRing:
    """One memfd holding ``num_slots`` slots (see module docstring)."""

    def __init__(self, ring_id: int, num_slots: int, slot_bytes: int, fd: int | None = None):
        self.ring_id = ring_id
        self.num_slots = num_slots
        self.slot_bytes = slot_bytes
        total = num_slots * slot_bytes
        flags = _FLAGS
        if fd is None:
            # the name (seen in /proc/PID/maps) says whose ring it is: trainer pid, ring id
            fd = os.memfd_create(f"m5stream-ring-{os.getpid()}-{ring_id}", os.MFD_CLOEXEC)
            os.ftruncate(fd, total)
            _allocate(fd, total)
            # The trainer maps the ring without MAP_POPULATE: populating holds this process's
            # mmap lock for the whole ring, and every page fault of the trainer (its own
            # batches, the training step) would wait for it. It only reads slots, one minor
            # fault per page the first time; the pages were allocated above, off that lock.
            flags = mmap.MAP_SHARED
        self.fd: int | None = fd
        self.mm: mmap.mmap | None = mmap.mmap(
            fd, total, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.array: np.ndarray | None = np.frombuffer(self.mm, dtype=np.uint8)

    def slot(self, i: int) -> np.ndarray:
        assert self.array is not None, "ring is closed"
        lo = i * self.slot_bytes
        return self.array[lo : lo + self.slot_bytes]

    def close(self) -> None:
        """Drop this process's handles; live leases keep the mapping until they die."""
        self.array = None
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                pass  # views still exported: the mapping goes away with the last of them
            self.mm = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class RingManager:
    """Trainer side: which slots are free, leasing them out, growing the ring.

    Retired rings (replaced by a larger one) stay open while any of their slots is still being
    written or leased, and close when the last one comes back.
    """

    def __init__(
        self,
        num_slots: int,
        slot_bytes: int,
        on_new_ring: Callable[[SlotRing], None] | None,
    ) -> None:
        """``on_new_ring``: told of every ring made (the workers must map it); ``None``: none
        yet, until :meth:`attach`."""
        self.num_slots = num_slots
        self._on_new_ring = on_new_ring
        self._next_id = 0
        self.rings: dict[int, SlotRing] = {}
        self.busy: dict[int, int] = {}
        self.free: deque[int] = deque()
        self.ring: SlotRing = self._make(round_up(slot_bytes))
        self.grows = 0

    def _make(self, slot_bytes: int) -> SlotRing:
        ring = SlotRing(self._next_id, self.num_slots, slot_bytes)
        self._next_id += 1
        self.rings[ring.ring_id] = ring
        self.busy[ring.ring_id] = 0
        self.free = deque(range(self.num_slots))
        if self._on_new_ring is not None:
            self._on_new_ring(ring)
        return ring

    def attach(self, on_new_ring: Callable[[SlotRing], None]) -> None:
        """From now on tell ``on_new_ring`` of every ring, starting with the current one."""
        self._on_new_ring = on_new_ring
        on_new_ring(self.ring)

    @property
    def slot_bytes(self) -> int:
        return self.ring.slot_bytes

    def grow(self, needed: int) -> None:
        """Replace the ring by one whose slots hold ``needed`` bytes with 25% headroom."""
        if needed <= self.ring.slot_bytes:
            return
        old = self.ring
        self.ring = self._make(round_up(needed + needed // 4))
        self.grows += 1
        if self.busy[old.ring_id] == 0:
            self._retire(old.ring_id)

    def _retire(self, ring_id: int) -> None:
        ring = self.rings.pop(ring_id, None)
        self.busy.pop(ring_id, None)
        if ring is not None:
            ring.close()

    def acquire(self) -> tuple[int, int] | None:
        if not self.free:
            return None
        self.busy[self.ring.ring_id] += 1
        return self.ring.ring_id, self.free.popleft()

    def release(self, ring_id: int, slot: int) -> None:
        if ring_id not in self.busy:
            return  # closed already
        self.busy[ring_id] -= 1
        if ring_id == self.ring.ring_id:
            self.free.append(slot)
        elif self.busy[ring_id] == 0:
            self._retire(ring_id)

    def slot(self, ring_id: int, slot: int) -> np.ndarray:
        return self.rings[ring_id].slot(slot)

    def lease(self, ring_id: int, slot: int) -> Lease:
        """A Lease view of a slot; the slot returns to the free list when it dies."""
        view = self.rings[ring_id].slot(slot).view(Lease)
        weakref.finalize(view, self.release, ring_id, slot)
        return view

    def close(self) -> None:
        self.free.clear()
        for rid in list(self.rings):
            self._retire(rid)
