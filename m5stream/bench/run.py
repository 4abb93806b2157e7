"""``m5stream bench``: measure a data path end to end, then the peers on the same data."""

from __future__ import annotations

import datetime
import os
import platform
import time
from typing import Any

import numpy

from .. import __version__
from ..demo import demo_dataset
from ..errors import ConfigError
from ..loader import Loader
from ..records import recorder_of
from ..source import dataset
from .measure import epoch_rates, measure
from .mixspec import is_mixture_spec, load_mixture
from .monitor import PeakTreeMemory, Progress
from .peers import run_peer
from .presets import resolve_transform
from .report import SCHEMA, bottleneck, stages

__all__ = ["run_bench"]


def _pil() -> str:
    try:
        import PIL  # optional: only its version is reported
    except ImportError:
        return "Pillow not installed"
    v = PIL.__version__
    return f"pillow-simd {v}" if ".post" in v else f"Pillow {v}"


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pil": _pil(),
        "cpus": os.cpu_count(),
    }


def run_bench(
    source: str | None = None,
    *,
    format: str | None = None,
    transform: str | None = None,
    batch_size: int = 64,
    workers: int = 2,
    executor: str = "auto",
    batches: int | None = None,
    seconds: float | None = None,
    epochs: int | None = None,
    compare: list[str] | None = None,
    progress: bool = True,
    record: str | bool | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return the result (schema in :mod:`.report`).

    No ``source``: the embedded demo photo dataset (made on first use) with the
    ``imagenet-train`` preset. The budget: ``batches`` timed batches, ``seconds`` timed seconds
    or ``epochs`` whole epochs, whichever ends first; none of them: 10 seconds. ``record``
    (default ``$M5STREAM_RECORD``), ``run_name``, ``tags``: the run's record, as a Loader's
    (:mod:`m5stream.records`), of kind ``bench`` with this result attached.
    """
    if source is None:
        source = demo_dataset()
        transform = transform or "imagenet-train"
    preset = resolve_transform(transform or "raw")
    if batches is None and seconds is None and epochs is None:
        seconds = 10.0
    t0 = time.perf_counter()
    mixed = is_mixture_spec(source)
    if mixed and compare:
        raise ConfigError("--compare runs the peers on one dataset, not on a mixture")
    ds = load_mixture(source) if mixed else dataset(source, format=format)
    listing = time.perf_counter() - t0
    budget = {"batches": batches, "seconds": seconds, "epochs": epochs}
    result = _header(source, ds, preset.name, batch_size, workers, executor, budget)
    # recording as any Loader does; an explicit None would switch $M5STREAM_RECORD off
    recording: dict[str, Any] = {"run_name": run_name, "tags": tags or {}}
    if record is not None:
        recording["record"] = record
    with PeakTreeMemory() as mem:
        made = time.perf_counter()  # start-up is timed from here: listing is apart, above
        loader = Loader(
            ds,
            batch_size,
            transform=preset.transform,
            batch_transform=preset.batch_transform,
            shuffle=True,
            seed=0,
            num_workers=workers,
            executor=executor,
            on_error="skip",
            output="numpy",
            copy=False,
            **recording,
        )
        try:
            got = measure(
                loader,
                max_batches=batches,
                max_seconds=seconds,
                max_epochs=epochs,
                progress=Progress("m5stream") if progress else None,
                origin=made,
            )
            stats = loader.stats
            result["config"]["executor"] = loader.executor_kind
            outcome = _outcome(got, stats, listing, workers, mem.peak_pss, mem.peak_rss)
            _annotate(loader, {**result, **outcome})
        finally:
            loader.close()
    outcome["memory"] = {"peak_tree_pss_bytes": mem.peak_pss, "peak_tree_rss_bytes": mem.peak_rss}
    result.update(outcome)
    _compare(
        result,
        compare or [],
        ds,
        preset,
        got.samples_per_s,
        batch_size,
        workers,
        budget,
        progress,
    )
    return result


def _annotate(loader: Loader, result: dict[str, Any]) -> None:
    """Mark the loader's run record (if any) as a bench run carrying ``result``."""
    rec = recorder_of(loader)
    if rec is not None:
        b = result["bottleneck"]
        rec.annotate(
            kind="bench",
            result={k: v for k, v in result.items() if k not in ("timeline", "compare")},
            bottleneck=b["stage"],
            bottleneck_reason=b["reason"],
        )


def _compare(
    result: dict[str, Any],
    compare: list[str],
    ds: Any,
    preset: Any,
    samples_per_s: float,
    batch_size: int,
    workers: int,
    budget: dict[str, Any],
    progress: bool,
) -> None:
    """Run each peer on the same data and add it, with its ratio, to ``result["compare"]``."""
    for name in compare:
        if result["interrupted"]:
            result["compare"][name] = {"status": "skipped", "reason": "interrupted"}
            continue
        try:
            peer, _ = run_peer(
                name,
                ds,
                preset,
                batch_size=batch_size,
                workers=workers,
                max_batches=budget["batches"],
                max_seconds=budget["seconds"],
                max_epochs=budget["epochs"],
                progress=progress,
            )
        except KeyboardInterrupt:
            result["interrupted"] = True
            peer = {"status": "skipped", "reason": "interrupted"}
        if peer["status"] == "ok" and peer["samples_per_s"] > 0:
            peer["ratio"] = samples_per_s / peer["samples_per_s"]
        result["compare"][name] = peer


def _header(
    source: str,
    ds: Any,
    transform: str,
    batch_size: int,
    workers: int,
    executor: str,
    budget: dict[str, Any],
) -> dict[str, Any]:
    """The result's description of the run: what, where, how (``budget``: batches, seconds,
    epochs)."""

    m = ds.manifest
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "m5stream_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "interrupted": False,
        "environment": _environment(),
        "source": {
            "uri": source,
            "format": m.format,
            "shards": m.num_shards,
            "samples": m.num_samples,
            "bytes": int(m.sizes.sum()),
        },
        "config": {
            "transform": transform,
            "batch_size": batch_size,
            "workers": workers,
            "executor": executor,
            **budget,
        },
    }
    return result


def _outcome(
    got: Any, stats: dict[str, Any], listing: float, workers: int, pss: int, rss: int
) -> dict[str, Any]:
    """What the timed run measured: throughput, stages, workers, memory, S3, bottleneck."""
    st = stages(stats["seconds"], listing, got.first_batch_s)
    busy = st["fetch"] + st["decode"] + st["transform"] + st["collate"]
    return dict(
        interrupted=got.interrupted,
        result={
            "batches": got.batches,
            "samples": got.samples,
            "bytes": got.bytes,
            "seconds": got.seconds,
            "samples_per_s": got.samples_per_s,
            "mb_per_s": got.mb_per_s,
            "skipped": stats["skipped"],
            "worker_restarts": stats["worker_restarts"],
            "poison_kills": stats["poison_kills"],
        },
        stages=st,
        workers={
            "count": workers,
            "utilisation": busy / (got.seconds * max(1, workers)) if got.seconds else 0.0,
        },
        memory={"peak_tree_pss_bytes": pss, "peak_tree_rss_bytes": rss},
        s3=stats.get("s3", {}),
        bottleneck=bottleneck(st, got.seconds, workers),
        startup=_startup(got, stats),
        timeline=got.timeline,
        compare={},
        **({"sources": stats["sources"]} if "sources" in stats else {}),
    )


def _startup(got: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """Start-up as a user meets it, timed from just before ``Loader(...)`` (listing apart)."""
    startup_batches = stats.get("startup_batches")  # where the loader reports it
    return {
        "first_batch_from_loader_s": got.first_batch_from_origin_s,
        "loader_init_s": got.iter_start_s,
        **epoch_rates(got.epochs),
        "epochs": [
            {"end_from_loader_s": e.end_s, "batches": e.batches, "samples": e.samples}
            for e in got.epochs
        ],
        "startup_batches": int(startup_batches) if startup_batches is not None else None,
    }
