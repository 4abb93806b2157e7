"""Feeding an accelerator: batches to a CUDA or XLA (Trainium) device, with static shapes.

:class:`DeviceLoader` wraps a :class:`~m5stream.Loader` (or any iterable of batch dicts):

- **CUDA**: each batch's tensors are copied (one CPU memcpy) into reused page-locked staging
  buffers - which also hands the shared-memory slot back to the workers at once - and from
  there to the device with ``non_blocking`` copies on a side stream, ``prefetch`` batches
  ahead, so the transfer overlaps the model's compute. Before a batch is handed out, the
  compute stream waits on its copy event and each tensor is ``record_stream``-ed, so the
  caching allocator never reuses its memory early.
- **XLA** (Trainium through torch-neuronx, TPU, or XLA-CPU): batches go through
  ``torch_xla``'s ``MpDeviceLoader`` (background transfer, the way torch-xla expects), after
  :class:`StaticShapes` has made every batch the same shapes - variable-length fields padded
  to a small fixed set of bucket lengths, the last batch padded to the full batch size with a
  ``__valid__`` mask - so the graph is traced once per bucket, never per batch.
- **CPU**: tensors as they are (static shapes too, when asked).

Non-tensor fields (``__key__``, lists of ``str``) stay on the host in the yielded dict, except
on XLA where only tensors travel. ``state_dict()`` is the position of the last batch *handed
to the trainer*, not of the batches prefetched behind it, so a resume is exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["DeviceLoader", "StaticShapes"]


class StaticShapes:
    """Make every batch the same shapes (XLA graphs are compiled per distinct shape).

    ``batch_size``: rows of every batch; a shorter batch (the last of an epoch) is padded with
    zero rows, and the boolean ``__valid__`` field marks the real ones. ``buckets``:
    ``{field: [lengths...]}`` for fields holding a variable-length sequence per sample (a list
    of 1-d arrays, or a 2-d array whose width varies between batches): each batch's field
    becomes ``[batch_size, L]`` with ``L`` the smallest bucket that fits its longest sequence,
    padded with ``pad_value``, plus ``<field>_length`` (int32). A sequence longer than the
    largest bucket is an error naming it; so the shapes a model sees come only from the buckets.
    """

    def __init__(
        self,
        batch_size: int,
        buckets: dict[str, Sequence[int]] | None = None,
        pad_value: int | float = 0,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError("batch_size must be positive")
        self.batch_size = int(batch_size)
        self.buckets = {k: sorted(int(x) for x in v) for k, v in (buckets or {}).items()}
        for k, v in self.buckets.items():
            if not v or v[0] <= 0:
                raise ConfigError(f"buckets of {k!r} must be positive lengths")
        self.pad_value = pad_value

    def bucket(self, field: str, length: int) -> int:
        for b in self.buckets[field]:
            if length <= b:
                return b
        raise ConfigError(
            f"a sequence of {field!r} has {length} elements, more than the largest bucket "
            f"{self.buckets[field][-1]}: add a bucket or truncate it in a transform"
        )

    def _sequences(self, name: str, value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(value, np.ndarray) and value.ndim == 2:
            lengths = np.full(len(value), value.shape[1], np.int32)
            rows = list(value)
        else:
            rows = [np.asarray(v).reshape(-1) for v in value]
            lengths = np.asarray([len(r) for r in rows], np.int32)
        width = self.bucket(name, int(lengths.max()) if len(lengths) else 1)
        dtype = rows[0].dtype if rows else np.int32
        out = np.full((self.batch_size, width), self.pad_value, dtype=dtype)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        lens = np.zeros(self.batch_size, np.int32)
        lens[:n] = lengths
        return out, lens

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        n = len(batch["__index__"])
        if n > self.batch_size:
            raise ConfigError(f"a batch of {n} rows is larger than batch_size={self.batch_size}")
        out: dict[str, Any] = {}
        for name, value in batch.items():
            if name in self.buckets:
                out[name], out[f"{name}_length"] = self._sequences(name, _numpy(value), n)
                continue
            arr = _numpy(value)
            if isinstance(arr, np.ndarray) and arr.ndim >= 1 and len(arr) == n:
                padded = np.zeros((self.batch_size, *arr.shape[1:]), dtype=arr.dtype)
                padded[:n] = arr
                if name == "__index__":
                    padded[n:] = -1
                out[name] = padded
            else:
                out[name] = value
        valid = np.zeros(self.batch_size, dtype=bool)
        valid[:n] = True
        out["__valid__"] = valid
        return out


def _numpy(value: Any) -> Any:
    if hasattr(value, "numpy") and hasattr(value, "device"):  # a CPU torch tensor
        return value.numpy()
    return value


def _tensors(batch: dict[str, Any]) -> dict[str, Any]:
    import torch  # torch (optional, heavy) only when used

    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


class _Pinned:
    """Reused page-locked host buffers, ``slots`` per (field, shape, dtype); a buffer is
    rewritten only after the device copy that last read it has finished (its event)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.buffers: dict[tuple[Any, ...], deque[list[Any]]] = {}
        self.pending: list[list[Any]] = []

    def stage(self, name: str, t: Any) -> Any:
        import torch  # torch (optional, heavy) only when used

        key = (name, tuple(t.shape), t.dtype)
        ring = self.buffers.setdefault(key, deque())
        if len(ring) < self.slots:
            entry: list[Any] = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True), None]
        else:
            entry = ring.popleft()
            if entry[1] is not None:
                entry[1].synchronize()
        ring.append(entry)
        entry[0].copy_(t)
        self.pending.append(entry)
        return entry[0]

    def copied(self, event: Any) -> None:
        """The buffers staged since the last call are read by the copies ``event`` ends."""
        for entry in self.pending:
            entry[1] = event
        self.pending = []


class DeviceLoader:
    """Batches of ``loader`` on ``device`` (see the module docstring)."""

    def __init__(
        self,
        loader: Iterable[dict[str, Any]],
        device: Any,
        *,
        static_shapes: StaticShapes | None = None,
        prefetch: int = 2,
    ) -> None:
        import torch  # torch (optional, heavy) only when used

        self.loader = loader
        self.static_shapes = static_shapes
        self.prefetch = max(1, int(prefetch))
        dev = str(device)
        self.kind = dev.split(":")[0]
        if self.kind == "xla":
            try:
                import torch_xla.core.xla_model  # only on an XLA device
                import torch_xla.distributed.parallel_loader  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "device 'xla' needs torch_xla: pip install torch-xla (on Trainium, "
                    "torch-neuronx brings it)"
                ) from None
            if static_shapes is None:
                raise ConfigError(
                    "XLA devices need static shapes: pass static_shapes=StaticShapes(...)"
                )
        elif self.kind == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(f"device {dev!r}: CUDA is not available in this torch build")
        elif self.kind != "cpu":
            raise ConfigError(f"unsupported device {dev!r} (cuda, xla or cpu)")
        self.device = device if self.kind == "xla" else torch.device(dev)
        self._state: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Any]:
        """The loader position after the last batch this DeviceLoader handed out."""
        if self._state is not None:
            return dict(self._state)
        return self.loader.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, Any], **kw: Any) -> None:
        self.loader.load_state_dict(state, **kw)  # type: ignore[attr-defined]
        self._state = None

    def _host(self) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Host batches (static shapes applied) with the loader state after each."""
        has_state = hasattr(self.loader, "state_dict")
        for batch in self.loader:
            if self.static_shapes is not None:
                batch = self.static_shapes(batch)
            state = self.loader.state_dict() if has_state else None  # type: ignore[attr-defined]
            yield batch, state

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.kind == "cuda":
            return self._iter_cuda()
        if self.kind == "xla":
            return self._iter_xla()
        return self._iter_cpu()

    def _iter_cpu(self) -> Iterator[dict[str, Any]]:
        for batch, state in self._host():
            self._state = state
            yield _tensors(batch)

    def _iter_xla(self) -> Iterator[dict[str, Any]]:
        import torch_xla.distributed.parallel_loader as pl  # only on an XLA device

        states: deque[dict[str, Any] | None] = deque()

        def tensors_only() -> Iterator[dict[str, Any]]:
            for batch, state in self._host():
                states.append(state)
                yield {k: v for k, v in _tensors(batch).items() if hasattr(v, "dtype")}

        for batch in pl.MpDeviceLoader(tensors_only(), self.device):
            self._state = states.popleft() if states else None
            yield batch

    def _iter_cuda(self) -> Iterator[dict[str, Any]]:
        import torch  # torch (optional, heavy) only when used

        side = torch.cuda.Stream(device=self.device)
        pinned = _Pinned(self.prefetch + 2)
        ready: deque[tuple[dict[str, Any], Any, dict[str, Any] | None]] = deque()
        host = self._host()

        def load_one() -> bool:
            try:
                batch, state = next(host)
            except StopIteration:
                return False
            staged = {
                k: pinned.stage(k, v) if isinstance(v, torch.Tensor) else v
                for k, v in _tensors(batch).items()
            }
            del batch  # the shared-memory slot goes back to the workers now
            with torch.cuda.stream(side):
                on_dev = {
                    k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in staged.items()
                }
                event = torch.cuda.Event()
                event.record(side)
            pinned.copied(event)
            ready.append((on_dev, event, state))
            return True

        for _ in range(self.prefetch):
            if not load_one():
                break
        current = torch.cuda.current_stream(self.device)
        while ready:
            batch, event, state = ready.popleft()
            current.wait_event(event)
            for v in batch.values():
                if isinstance(v, torch.Tensor):
                    v.record_stream(current)
            load_one()  # the next copy starts while the trainer computes on this batch
            self._state = state
            yield batch
