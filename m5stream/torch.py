"""PyTorch integration: ``m5stream.torch.IterableDataset``.

One class, the two ways people use an ``IterableDataset``:

* **Batch mode** - ``DataLoader(ds, batch_size=None)``: the dataset yields whole m5 batches
  (dicts of tensors) made by m5's own worker processes (``num_workers`` here is m5's).
* **Sample mode** - ``DataLoader(ds, batch_size=B, num_workers=N)`` with the same ``B``: each
  torch worker ``k`` yields the samples of m5 global steps ``k, k+N, k+2N, ...``; torch's
  in-order round-robin over its workers then rebuilds exactly the batches of the m5 order. (A
  sample skipped with ``on_error="skip"`` shortens its batch's run and shifts torch's batch
  boundaries; use batch mode when skipping.)

``unit="auto"`` picks sample mode inside a torch worker and batch mode otherwise. Both modes
implement ``state_dict``/``load_state_dict``, so ``torchdata.stateful_dataloader.
StatefulDataLoader`` checkpoints and resumes them exactly. ``set_epoch`` must be called before
the ``DataLoader`` is iterated (workers get a copy of the dataset at each iteration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.utils.data

from .config import LoaderConfig, ReadAheadBudget, resolve_rank
from .dataset import Dataset
from .device import DeviceLoader, StaticShapes
from .errors import ConfigError
from .execution import ExecContext
from .execution.rows import load_rows
from .loader import Loader
from .mixing import Mixture
from .plan import Plan
from .source import dataset
from .stats import Stats

__all__ = ["DeviceLoader", "IterableDataset", "StaticShapes"]


class IterableDataset(torch.utils.data.IterableDataset):
    """A ``torch.utils.data.IterableDataset`` over an m5stream dataset (see module docstring).

    Takes the arguments of :class:`m5stream.Loader`, plus ``unit`` (``"auto"``, ``"batch"``
    or ``"sample"``). Both modes use one :class:`~m5stream.config.LoaderConfig` and the plan
    it defines; the rank is resolved as the Loader resolves it (explicit, then
    ``torch.distributed``, then ``RANK``/``WORLD_SIZE``), in the trainer process.
    """

    def __init__(
        self,
        ds: Dataset | str | list[str],
        batch_size: int,
        *,
        unit: str = "auto",
        transform: Any = None,
        batch_transform: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if unit not in ("auto", "batch", "sample"):
            raise ConfigError(f"unit must be 'auto', 'batch' or 'sample', not {unit!r}")
        self.ds = dataset(ds) if isinstance(ds, (str, list, tuple)) else ds
        options.setdefault("output", "torch")
        self._rank_args = (options.pop("rank", None), options.pop("world_size", None))
        # validated now (errors at construction); the rank is resolved again when the
        # trainer first iterates, after the user has initialised torch.distributed
        self.config = LoaderConfig.build(batch_size, **options)
        self.batch_size = batch_size
        self.unit = unit
        self.transform = transform
        self.batch_transform = batch_transform
        self._ranked = False
        self._loader: Loader | None = None
        self._epoch = 0
        self._pending: dict[str, Any] | None = None
        self._sample_state: dict[str, Any] | None = None

    def _resolved(self) -> LoaderConfig:
        """The config with this process's rank, resolved once: in the trainer process when
        it iterates or hands a copy to spawned torch workers (``__getstate__``), or in a
        forked torch worker, which inherits the trainer's process group and environment."""
        if not self._ranked:
            rank, world_size = resolve_rank(*self._rank_args)
            self.config = dataclasses.replace(self.config, rank=rank, world_size=world_size)
            self._ranked = True
        return self.config

    def __getstate__(self) -> dict[str, Any]:
        self._resolved()  # before the copy goes to torch's workers
        state = dict(self.__dict__)
        state["_loader"] = None
        return state

    # -- shared
    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        if self._loader is not None:
            self._loader.set_epoch(epoch)
        self._sample_state = None

    def _mode(self) -> tuple[str, Any]:
        info = torch.utils.data.get_worker_info()
        if self.unit == "sample" or (self.unit == "auto" and info is not None):
            return "sample", info
        return "batch", info

    def __iter__(self) -> Iterator[dict[str, Any]]:
        mode, info = self._mode()
        if mode == "batch":
            return iter(self._batch_loader())
        return self._iter_samples(info)

    def state_dict(self) -> dict[str, Any]:
        mode, _ = self._mode()
        if mode == "batch":
            return {"mode": "batch", "loader": self._batch_loader().state_dict()}
        return {"mode": "sample", **(self._sample_state or {"epoch": self._epoch})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode") == "batch":
            self._pending = state["loader"]
            if self._loader is not None:
                self._loader.load_state_dict(self._pending)
                self._pending = None
        else:
            self._sample_state = {k: v for k, v in state.items() if k != "mode"}
            self._epoch = int(state.get("epoch", self._epoch))

    # -- batch mode: an m5 Loader with m5 workers
    def _batch_loader(self) -> Loader:
        if self._loader is None:
            self._loader = Loader(
                self.ds,
                transform=self.transform,
                batch_transform=self.batch_transform,
                config=self._resolved(),
            )
            if self._pending is not None:
                self._loader.load_state_dict(self._pending)
                self._pending = None
            else:
                self._loader.set_epoch(self._epoch)
        return self._loader

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None

    # -- sample mode: this torch worker's share of the plan's steps
    def _iter_samples(self, info: Any) -> Iterator[dict[str, Any]]:
        c = self._resolved()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        st = self._sample_state or {}
        epoch = int(st.get("epoch", self._epoch))
        ds = self.ds
        plan = Plan.for_epoch(c, ds if isinstance(ds, Mixture) else ds.manifest.counts, epoch)
        ctx = ExecContext(
            ds,
            c,
            ds.transforms(self.transform) if isinstance(ds, Mixture) else self.transform,
            None,
            ReadAheadBudget(threads=0, depth=1, steps=1, shard_lookahead=1),
            Stats(),
        )
        skip = int(st.get("in_batch", 0))
        for step in plan.worker_steps(wid, nw, int(st.get("step", wid))):
            res = load_rows(ctx, plan.indices(step), epoch)
            samples = res.samples
            for i in range(skip, len(samples)):
                last = i + 1 == len(samples)
                self._sample_state = {
                    "epoch": epoch,
                    "step": step + nw if last else step,
                    "in_batch": 0 if last else i + 1,
                }
                yield _to_torch(samples[i])
            skip = 0
        self._sample_state = {"epoch": epoch + 1, "step": wid, "in_batch": 0}


def _to_torch(sample: dict[str, Any]) -> dict[str, Any]:
    return {
        k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
        for k, v in sample.items()
    }
