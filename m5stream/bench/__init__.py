"""``m5stream bench``: throughput of a data path, where the time goes, and the loaders people
use beside it (see :mod:`.report` for the JSON schema)."""

from __future__ import annotations

from .report import SCHEMA, format_report
from .run import run_bench

__all__ = ["SCHEMA", "format_report", "run_bench"]
