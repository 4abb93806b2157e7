"""Plan layer: which samples each step of an epoch reads on this rank, and the units they
touch. Pure: integers and arrays in, integers and arrays out; no I/O, no threads."""

from .mixture import MixtureOrder, MixtureSchedule, WeightSegment, mixture_order
from .steps import IndexRun, Plan, make_order
from .units import Locator, PlannedBatch, UnitPlanner

__all__ = [
    "IndexRun",
    "Locator",
    "MixtureOrder",
    "MixtureSchedule",
    "Plan",
    "PlannedBatch",
    "UnitPlanner",
    "WeightSegment",
    "make_order",
    "mixture_order",
]
