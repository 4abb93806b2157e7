"""``m5stream`` command line: ``bench`` (throughput of a data path, where the time goes, and
the loaders people use beside it), ``inspect`` (what a source holds), ``shard`` (rewrite a
dataset as tar/Parquet shards, locally or to S3), ``runs`` and ``report`` (recorded runs:
:mod:`m5stream.records.commands`).

``m5stream bench`` with no source benchmarks the embedded demo photo dataset (generated on
first use, offline), so it is the first command a new user can run. Errors in the arguments or
the source end with exit status 2 and one line on stderr; Ctrl-C stops the workers, prints
what was measured and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from .bench import format_report, run_bench
from .bench.mixspec import is_mixture_spec, load_mixture
from .bench.peers import PEERS
from .bench.plot import plot
from .bench.presets import PRESETS
from .errors import M5Error
from .records import commands as records_commands
from .source import dataset
from .writer import write_shards

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one clear line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return v

    return parse


def _workers(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _bench(args: argparse.Namespace) -> int:
    compare = [c.strip() for c in (args.compare or "").split(",") if c.strip()]
    unknown = [c for c in compare if c not in PEERS]
    if unknown:
        print(
            f"m5stream bench: error: unknown peer(s) {', '.join(unknown)} "
            f"(known: {', '.join(PEERS)})",
            file=sys.stderr,
        )
        return 2
    result = run_bench(
        args.source,
        format=args.format,
        transform=args.transform,
        batch_size=args.batch_size,
        workers=args.workers,
        executor=args.executor,
        batches=args.batches,
        seconds=args.seconds,
        epochs=args.epochs,
        compare=compare,
        progress=not args.quiet,
        record=args.record,
        run_name=args.run_name,
        tags=dict(args.tag),
    )
    print(format_report(result))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)
    if args.plot:
        plot(result, args.plot)
    return 130 if result["interrupted"] else 0


def _field_type(v: Any) -> str:
    if isinstance(v, (bytes, str)):
        return f"{type(v).__name__}[{len(v)}]"
    shape = getattr(v, "shape", None)
    if shape is not None and getattr(v, "dtype", None) is not None:
        return f"{v.dtype}{list(shape)}" if shape else str(v.dtype)
    return type(v).__name__


def _inspect_mixture(args: argparse.Namespace) -> int:
    mx = load_mixture(args.source)
    summary = {
        "mixture": args.source,
        "granularity": mx.granularity,
        "epoch_samples": mx.epoch_samples,
        "weights": mx.weights,
        "fingerprint": mx.fingerprint,
        "sources": {
            n: {
                "source": d.manifest.source,
                "format": d.manifest.format,
                "shards": d.manifest.num_shards,
                "samples": len(d),
                "fingerprint": d.fingerprint,
                "own_transform": mx.has_own_transform(n),
            }
            for n, d in mx.datasets.items()
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"mixture      {args.source} ({mx.granularity}, {mx.epoch_samples:,} samples/epoch)")
    for n, d in summary["sources"].items():
        print(
            f"  {n:<10} weight {mx.weights[n]:g}: {d['format']}, {d['shards']:,} shards, "
            f"{d['samples']:,} samples, {d['source']}"
        )
    print(f"fingerprint  {mx.fingerprint}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    if is_mixture_spec(args.source):
        return _inspect_mixture(args)
    ds = dataset(args.source, format=args.format)
    m = ds.manifest
    first = ds[0] if len(ds) else {}
    failures = []
    checked = m.num_shards if args.check_shards is None else min(args.check_shards, m.num_shards)
    for s in range(checked):  # open every shard and read its first sample
        if m.counts[s] == 0:
            continue
        try:
            ds.read_at(int(m.offsets[s]), s, 0)
        except M5Error as exc:
            failures.append({"shard": m.keys[s], "error": f"{type(exc).__name__}: {exc}"})
    glue = m.options.get("glue")
    pkeys = m.options.get("partition_keys") or []
    fields = {k: _field_type(v) for k, v in first.items() if not k.startswith("__")}
    summary: dict[str, Any] = {
        "source": m.source,
        "format": m.format,
        "root": m.root,
        "shards": m.num_shards,
        "samples": m.num_samples,
        "bytes": int(m.sizes.sum()),
        "fingerprint": m.fingerprint,
        "partitions": (
            len({tuple(v) for v in m.options.get("partition_values", [])}) if pkeys else None
        ),
        "partition_keys": [k["name"] for k in pkeys],
        "table_version": glue.get("version_id") if glue else None,
        "first_keys": [ds[i]["__key__"] for i in range(min(3, len(ds)))],
        "fields": fields,
        "shards_checked": checked,
        "shards_failed": failures,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"source       {m.source}")
        print(f"format       {m.format}, root {m.root}")
        print(
            f"shards       {m.num_shards:,}, samples {m.num_samples:,}, bytes {summary['bytes']:,}"
        )
        if pkeys:
            names = ", ".join(k["name"] for k in pkeys)
            print(f"partitions   {summary['partitions']} by {names}")
        if glue:
            print(f"table        version {glue.get('version_id')}, where {glue.get('where')!r}")
        print(f"fingerprint  {m.fingerprint}")
        print(f"first keys   {', '.join(summary['first_keys'])}")
        print("fields       " + ", ".join(f"{k}: {t}" for k, t in fields.items()))
        status = "all open" if not failures else f"{len(failures)} FAILED"
        print(f"shards check {checked} opened, {status}")
        for f in failures:
            print(f"  {f['shard']}: {f['error']}")
    return 1 if failures else 0


def _shard(args: argparse.Namespace) -> int:
    ds = dataset(args.source, format=args.format)
    samples = (ds[i] for i in range(len(ds)))
    pattern = write_shards(samples, args.dst, format=args.to, shard_size=args.shard_size)
    print(json.dumps({"source": args.source, "samples": len(ds), "written": pattern}, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="m5stream")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    b = sub.add_parser(
        "bench",
        help="measure a data path (the demo photo dataset by default)",
        description="Measure loader throughput, attribute the time to stages, name the "
        "bottleneck, and compare with other loaders on the same data.",
    )
    b.add_argument(
        "source",
        nargs="?",
        help="dataset source, or a mixture file (MIX.json); omitted: the embedded demo",
    )
    b.add_argument("--format", default=None, help="format of SOURCE (default: detected)")
    b.add_argument(
        "--transform",
        default=None,
        metavar="PRESET|FILE.json",
        help=f"{', '.join(PRESETS)}, or a transform artifact (default: raw; "
        "imagenet-train for the demo)",
    )
    b.add_argument("--batch-size", type=_positive(int), default=64)
    b.add_argument("--workers", type=_workers, default=2)
    b.add_argument(
        "--executor",
        default="auto",
        choices=["auto", "inline", "threads", "processes"],
        help="which executor delivers the batches (default: chosen from the format)",
    )
    budget = b.add_mutually_exclusive_group()
    budget.add_argument("--batches", type=_positive(int), help="timed batches")
    budget.add_argument("--seconds", type=_positive(float), help="timed seconds (default 10)")
    budget.add_argument(
        "--epochs",
        type=_positive(int),
        help="exactly N whole epochs (2+ give the first-epoch ratio)",
    )
    b.add_argument(
        "--compare", default=None, metavar="PEERS", help="torch,s3torchconnector,webdataset"
    )
    b.add_argument("--json", dest="json_path", default=None, help="write the result as JSON")
    b.add_argument("--plot", default=None, metavar="PATH.png", help="draw the run (matplotlib)")
    b.add_argument("--quiet", action="store_true", help="no progress line")
    b.add_argument(
        "--record",
        nargs="?",
        const=True,
        default=None,
        metavar="URL",
        help="record the run (default URL: $M5STREAM_RECORD, else the cache's runs.db)",
    )
    b.add_argument("--run-name", default=None, help="the run's name in its record")
    b.add_argument("--tag", type=_tag, action="append", default=[], metavar="KEY=VALUE")
    i = sub.add_parser("inspect", help="what a source holds, and whether every shard opens")
    i.add_argument("source", help="dataset source, or a mixture file (MIX.json)")
    i.add_argument("--format", default=None)
    i.add_argument("--check-shards", type=_workers, default=None, help="check only the first N")
    i.add_argument("--json", action="store_true", help="print JSON")
    s = sub.add_parser("shard", help="rewrite a dataset as tar or Parquet shards (local or S3)")
    s.add_argument("source")
    s.add_argument("dst", help="a directory or s3://bucket/prefix")
    s.add_argument("--format", default=None, help="format of SOURCE (default: detected)")
    s.add_argument("--to", default="tar", choices=["tar", "parquet"])
    s.add_argument("--shard-size", type=_positive(int), default=1000, help="samples per shard")
    records_commands.add_parsers(sub)  # runs, report (m5stream.records.commands)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = records_commands.normalize_argv(sys.argv[1:] if argv is None else list(argv))
    args = _parser().parse_args(argv)
    run = {
        "bench": _bench,
        "inspect": _inspect,
        "shard": _shard,
        "runs": records_commands.main_runs,
        "report": records_commands.main_report,
    }[args.cmd]
    try:
        return run(args)
    except M5Error as exc:
        print(f"m5stream {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"m5stream {args.cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
