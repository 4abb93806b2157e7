"""The loaders ``m5stream bench --compare`` runs beside m5stream, on the same data.

Each peer gets the same dataset, batch size, worker count and preset (its plain-PyTorch twin,
``presets.Preset.peer_fn``), and is measured by the same :func:`~.measure.measure`:

- ``torch``: ``torch.utils.data.DataLoader`` over a map-style Dataset that reads each sample
  through m5stream's random-access reader and runs the preset with Pillow (shuffled).
- ``webdataset``: ``webdataset.WebDataset`` over the tar shards (local paths), the preset as
  its ``map``, in a ``DataLoader`` with the same workers.
- ``s3torchconnector``: ``S3MapDataset`` over the objects of an ``s3://`` raw dataset (one
  object per sample), the preset on each object's bytes, in a ``DataLoader`` (shuffled).

A peer that is not installed, or that cannot read this kind of source, is reported as
``skipped`` with the reason; one that fails as ``failed`` with its error.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

from ..dataset import Dataset
from ..formats.raw import field_name
from ..storage.s3 import S3Config
from .measure import Measurement, epoch_rates, measure
from .monitor import Progress
from .presets import Preset

__all__ = ["PEERS", "run_peer"]

PEERS = ("torch", "webdataset", "s3torchconnector")


def _collate(items: list[Any]) -> Any:
    import torch  # torch (optional, heavy) only when used (a peer is run)

    first = items[0]
    if isinstance(first, torch.Tensor) and all(
        isinstance(x, torch.Tensor) and x.shape == first.shape for x in items
    ):
        return torch.stack(items)
    return items


class _MapDataset:
    """Map-style: sample ``i`` read through m5stream's reader, then the preset's twin."""

    def __init__(self, ds: Dataset, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.ds = ds
        self.fn = fn

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.fn(self.ds[i])


class _WdsSample:
    """webdataset's sample dict (``__key__``, one bytes value per extension) -> the twin."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn

    def __call__(self, sample: dict[str, Any]) -> Any:
        return self.fn(sample)


class _S3Object:
    """An s3torchconnector object reader -> ``{extension: bytes}`` -> the twin."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn

    def __call__(self, reader: Any) -> Any:
        return self.fn({field_name(reader.key): reader.read()})


def _context(ds: Dataset, workers: int) -> Any:
    # a process holding the AWS CRT's threads must not fork: S3 sources use forkserver
    return "forkserver" if workers and ds.manifest.root.startswith("s3://") else None


def _loader(dataset: Any, batch_size: int, workers: int, ctx: Any, shuffle: bool) -> Any:
    import torch.utils.data  # torch (optional, heavy) only when used (a peer is run)

    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=_collate,
        multiprocessing_context=ctx if workers else None,
    )


def _skip(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


def run_peer(
    name: str,
    ds: Dataset,
    preset: Preset,
    *,
    batch_size: int,
    workers: int,
    max_batches: int | None,
    max_seconds: float | None,
    progress: bool,
    max_epochs: int | None = None,
) -> tuple[dict[str, Any], Measurement | None]:
    """``({"status": ..., ...}, measurement or None)`` for one peer."""
    if name not in PEERS:
        return _skip(f"unknown peer (known: {', '.join(PEERS)})"), None
    for mod in dict.fromkeys(("torch", name)):  # each peer's module is named like the peer
        if importlib.util.find_spec(mod) is None:
            return _skip(f"{mod} is not installed"), None
    if preset.peer_fn is None:
        return _skip(f"transform {preset.name!r} has no PyTorch twin to run"), None
    if preset.batch_transform is not None and name != "torch":
        return _skip("batch transforms are compared with the torch peer only"), None
    m = ds.manifest
    ctx = _context(ds, workers)
    made = time.perf_counter()  # start-up is timed from here, as m5stream's from Loader(...)
    if name == "torch":
        loader = _loader(_MapDataset(ds, preset.peer_fn), batch_size, workers, ctx, True)
    elif name == "webdataset":
        if m.format != "tar":
            return _skip(f"webdataset reads tar shards; this source is {m.format}"), None
        if m.root.startswith("s3://"):
            return _skip("webdataset reads S3 through a shell pipe; not measured"), None
        import webdataset as wds  # optional peer ([compare] extra): only when compared

        urls = [m.uri(i) for i in range(m.num_shards)]
        pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False).map(
            _WdsSample(preset.peer_fn)
        )
        loader = _loader(pipeline, batch_size, workers, ctx, False)
    else:
        if not m.root.startswith("s3://") or m.format != "raw":
            return _skip(
                "s3torchconnector reads one S3 object per sample (s3:// raw sources)"
            ), None
        from s3torchconnector import S3ClientConfig, S3MapDataset  # optional peer, as above

        s3 = (ds.s3 or S3Config()).resolved()
        kw: dict[str, Any] = {"region": s3.region}
        if s3.endpoint:
            kw["endpoint"] = s3.endpoint
            kw["s3client_config"] = S3ClientConfig(force_path_style=True)
        objs = S3MapDataset.from_objects(
            [m.uri(i) for i in range(m.num_shards)], transform=_S3Object(preset.peer_fn), **kw
        )
        loader = _loader(objs, batch_size, workers, "forkserver" if workers else None, True)
    try:
        got = measure(
            loader,
            max_batches=max_batches,
            max_seconds=max_seconds,
            max_epochs=max_epochs,
            progress=Progress(f"{name:>8}") if progress else None,
            origin=made,
        )
    except Exception as exc:  # a peer's failure is reported, not ours
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, None
    finally:
        it = getattr(loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
    if got.interrupted:
        raise KeyboardInterrupt
    return {
        "status": "ok",
        "samples_per_s": got.samples_per_s,
        "mb_per_s": got.mb_per_s,
        "first_batch_s": got.first_batch_s,
        "first_batch_from_loader_s": got.first_batch_from_origin_s,
        "first_epoch_ratio": epoch_rates(got.epochs)["first_epoch_ratio"],
        "samples": got.samples,
        "seconds": got.seconds,
        "workers": workers,
        "batch_size": batch_size,
        "context": ctx or ("fork" if workers and os.name == "posix" else None),
    }, got
