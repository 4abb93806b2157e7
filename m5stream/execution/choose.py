"""Which executor runs a loader: one choice from the config and the format's capabilities.

* ``threads``: a format with ``block_reads`` (Parquet, CSV, tar, raw objects), no per-sample
  or batch transform, an order whose batches read few units (natural or block shuffle), and
  ``columnar_reads="threads"``. Units are fetched and decoded once, ahead, by threads (the
  decoders and the CRT release the GIL), and batches are slices of them, so no batch crosses
  a process boundary.
* ``processes``: ``num_workers > 0`` otherwise: Python transforms need processes to use more
  than one core; batches come back through shared-memory slots.
* ``inline``: ``num_workers == 0`` otherwise.

``executor=`` in the config overrides the choice; one that cannot run the config is a
:class:`~m5stream.errors.ConfigError` saying why.
"""

from __future__ import annotations

from ..config import LoaderConfig
from ..errors import ConfigError
from ..formats.caps import FormatCaps

__all__ = ["choose_executor"]


def _threads_blocker(
    config: LoaderConfig, caps: FormatCaps, has_transform: bool, has_batch_transform: bool
) -> str | None:
    """Why the threads executor cannot run this config (``None``: it can)."""
    if not caps.block_reads:
        return "the format has no decode units to read ahead"
    if has_transform or has_batch_transform:
        return "a per-sample or batch transform runs on the samples"
    if config.shuffle == "global":
        return "a global shuffle reads a different unit for nearly every sample"
    if config.columnar_reads != "threads":
        return 'columnar_reads="workers" asks for worker processes'
    return None


def choose_executor(
    config: LoaderConfig, caps: FormatCaps, *, has_transform: bool, has_batch_transform: bool
) -> str:
    """``"inline"``, ``"threads"`` or ``"processes"`` (see module docstring)."""
    blocker = _threads_blocker(config, caps, has_transform, has_batch_transform)
    if config.executor == "threads":
        if blocker is not None:
            raise ConfigError(f'executor="threads" cannot run this loader: {blocker}')
        return "threads"
    if config.executor != "auto":
        return config.executor
    if blocker is None:
        return "threads"
    return "processes" if config.num_workers > 0 else "inline"
