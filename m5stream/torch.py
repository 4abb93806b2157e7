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

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.utils.data

from .dataset import Dataset, dataset
from .device import DeviceLoader, StaticShapes
from .errors import ConfigError
from .loader import Loader, _resolve_rank
from .sampling import Order, batch_indices, steps_per_epoch
from .workers.task import load_samples

__all__ = ["DeviceLoader", "IterableDataset", "StaticShapes"]


class IterableDataset(torch.utils.data.IterableDataset):
    """A ``torch.utils.data.IterableDataset`` over an m5stream dataset (see module docstring).

    Takes the arguments of :class:`m5stream.Loader`, plus ``unit`` (``"auto"``, ``"batch"``
    or ``"sample"``).
    """

    def __init__(
        self, ds: Dataset | str, batch_size: int, *, unit: str = "auto", **loader_kwargs: Any
    ) -> None:
        super().__init__()
        if unit not in ("auto", "batch", "sample"):
            raise ConfigError(f"unit must be 'auto', 'batch' or 'sample', not {unit!r}")
        self.ds = dataset(ds) if isinstance(ds, str) else ds
        self.batch_size = batch_size
        self.unit = unit
        self.kwargs = dict(loader_kwargs)
        self.kwargs.setdefault("output", "torch")
        self._loader: Loader | None = None
        self._epoch = 0
        self._pending: dict[str, Any] | None = None
        self._sample_state: dict[str, Any] | None = None

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
            self._loader = Loader(self.ds, self.batch_size, **self.kwargs)
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

    # -- sample mode: this torch worker's share of the global steps
    def _iter_samples(self, info: Any) -> Iterator[dict[str, Any]]:
        kw = self.kwargs
        # the Loader's resolution: under torchrun without an explicit rank, each rank takes
        # its share of every global step (a torch worker inherits RANK/WORLD_SIZE)
        rank, world_size = _resolve_rank(kw.get("rank"), kw.get("world_size"))
        seed = int(kw.get("seed", 0))
        order = Order(
            self.ds.manifest.counts,
            shuffle=kw.get("shuffle", False),
            seed=seed,
            block_size=int(kw.get("block_size", 16384)),
        )
        n_steps = steps_per_epoch(
            order.num_samples, self.batch_size * world_size, bool(kw.get("drop_last", False))
        )
        drop_last = bool(kw.get("drop_last", False))
        even = bool(kw.get("even_batches", True)) and world_size > 1 and not drop_last
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        st = self._sample_state or {}
        epoch = int(st.get("epoch", self._epoch))
        step = int(st.get("step", wid))
        skip = int(st.get("in_batch", 0))
        transform = kw.get("transform")
        on_error = kw.get("on_error", "raise")
        while step < n_steps:
            idx = batch_indices(
                order,
                epoch,
                step,
                batch_size=self.batch_size,
                world_size=world_size,
                rank=rank,
                even=even,
            )
            res = load_samples(self.ds, transform, idx, seed=seed, epoch=epoch, on_error=on_error)
            if res.error is not None:
                raise res.error.to_exception(wid)
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
            step += nw
        self._sample_state = {"epoch": epoch + 1, "step": wid, "in_batch": 0}


def _to_torch(sample: dict[str, Any]) -> dict[str, Any]:
    return {
        k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
        for k, v in sample.items()
    }
