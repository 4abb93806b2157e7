"""``m5stream`` command line: ``bench`` (throughput of a data path), ``shard`` (rewrite a
dataset as tar/Parquet shards, locally or to S3) and ``inspect``.

``m5stream bench`` with no source benchmarks the embedded demo dataset (generated on first
use, offline), so it is the first command a new user can run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from .dataset import dataset
from .demo import demo_dataset
from .errors import M5Error
from .loader import Loader

__all__ = ["main"]


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    source = args.source or demo_dataset()
    ds = dataset(source, format=args.format)
    rates: list[float] = []
    mbs: list[float] = []
    with Loader(
        ds,
        args.batch_size,
        shuffle=True,
        seed=0,
        num_workers=args.workers,
        output="numpy",
        on_error="skip",
    ) as loader:
        it = iter(loader)
        next(it)  # warm-up: workers started, first shards opened
        for _ in range(args.repeats):
            n = nbytes = 0
            t0 = time.perf_counter()
            for _b in range(args.batches):
                try:
                    batch = next(it)
                except StopIteration:
                    it = iter(loader)
                    batch = next(it)
                n += len(batch["__key__"])
                for v in batch.values():
                    if isinstance(v, list):
                        nbytes += sum(len(x) for x in v if isinstance(x, (bytes, str)))
                    elif hasattr(v, "nbytes"):
                        nbytes += int(v.nbytes)
            dt = time.perf_counter() - t0
            rates.append(n / dt)
            mbs.append(nbytes / dt / 1e6)
        stats = loader.stats
    return {
        "source": source,
        "format": ds.manifest.format,
        "samples_in_dataset": len(ds),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "samples_per_s_median": statistics.median(rates),
        "samples_per_s_runs": rates,
        "mb_per_s_median": statistics.median(mbs),
        "stats": stats,
    }


def _inspect(args: argparse.Namespace) -> dict[str, Any]:
    ds = dataset(args.source, format=args.format)
    m = ds.manifest
    first = ds[0] if len(ds) else {}
    return {
        "source": m.source,
        "format": m.format,
        "shards": m.num_shards,
        "samples": m.num_samples,
        "fingerprint": m.fingerprint,
        "first_sample": {
            k: (f"{type(v).__name__}[{len(v)}]" if isinstance(v, (bytes, str)) else repr(v))
            for k, v in first.items()
        },
    }


def _shard(args: argparse.Namespace) -> dict[str, Any]:
    from .writer import write_shards

    ds = dataset(args.source, format=args.format)
    samples = (ds[i] for i in range(len(ds)))
    pattern = write_shards(samples, args.dst, format=args.to, shard_size=args.shard_size)
    return {"source": args.source, "samples": len(ds), "written": pattern}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="m5stream")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="measure loader throughput (demo dataset by default)")
    b.add_argument("source", nargs="?", help="dataset source; omitted: the embedded demo")
    b.add_argument("--format", default=None)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--batches", type=int, default=20, help="batches per timed run")
    b.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    b.add_argument("--json", dest="json_path", default=None, help="also write results here")
    s = sub.add_parser("shard", help="rewrite a dataset as tar or Parquet shards (local or S3)")
    s.add_argument("source")
    s.add_argument("dst", help="a directory or s3://bucket/prefix")
    s.add_argument("--format", default=None, help="format of SOURCE (default: detected)")
    s.add_argument("--to", default="tar", choices=["tar", "parquet"])
    s.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    i = sub.add_parser("inspect", help="print a dataset's manifest summary")
    i.add_argument("source")
    i.add_argument("--format", default=None)
    args = p.parse_args(argv)
    try:
        run = {"bench": _bench, "inspect": _inspect, "shard": _shard}[args.cmd]
        result = run(args)
    except M5Error as exc:
        print(f"m5stream: error: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "bench":
        print(
            f"source   {result['source']} ({result['format']}, "
            f"{result['samples_in_dataset']} samples)"
        )
        print(f"workers  {result['workers']}, batch size {result['batch_size']}")
        runs = len(result["samples_per_s_runs"])
        print(
            f"speed    {result['samples_per_s_median']:.0f} samples/s, "
            f"{result['mb_per_s_median']:.1f} MB/s (median of {runs})"
        )
        secs = result["stats"]["seconds"]
        print("stages   " + ", ".join(f"{k} {v:.3f}s" for k, v in secs.items()))
        if args.json_path:
            with open(args.json_path, "w") as f:
                json.dump(result, f, indent=2)
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
