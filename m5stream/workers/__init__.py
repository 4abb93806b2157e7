"""Execution layer: worker processes, shared-memory batch slots, ordered delivery."""

from .pool import WorkerPool
from .slots import RingManager, SlotRing

__all__ = ["RingManager", "SlotRing", "WorkerPool"]
