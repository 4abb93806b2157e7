"""``m5stream runs`` and ``m5stream report``: the recorded runs from the command line.

``m5stream runs [list] [URL] [--since 7d] [--where SQL] [--limit N] [--json]`` lists runs,
newest first; ``runs show ID`` one run with its intervals; ``runs compare ID ID`` stages and
throughput side by side; ``runs sql "SELECT ..."`` runs SQL in a read-only session (the
database refuses writes). ``m5stream report [URL] -o report.html`` writes the HTML page
(:mod:`.report`). URL defaults to ``$M5STREAM_RECORD``, then ``sqlite:///<cache>/runs.db``;
``ID`` may be any unique prefix of a run id. Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .urls import default_url, redact, resolve_url

__all__ = ["RUNS_ACTIONS", "add_parsers", "main_report", "main_runs", "normalize_argv"]

RUNS_ACTIONS = ("list", "show", "compare", "sql")


class CommandError(Exception):
    """A one-line error of a records command (exit status 2)."""


def _url(given: str | None) -> str:
    url = resolve_url(given) if given else resolve_url(None)
    return url or default_url()


def _open(url: str) -> Any:
    """A read-only store of ``url`` (the database refuses writes, so ``--where`` and
    ``runs sql`` can only read). Refuses a SQLite file that does not exist; brings an older
    schema up to date first, through a writable connection of its own."""
    import sqlalchemy as sa  # lazy: the CLI's other commands do not need SQLAlchemy

    from .schema import SCHEMA_VERSION, current_version
    from .store import RunStore

    u = sa.make_url(url)
    db = u.database
    if u.get_backend_name() == "sqlite" and db and db != ":memory:" and not os.path.exists(db):
        raise CommandError(f"no run database at {db} (record runs with record=...)")
    store = RunStore(url, read_only=True, migrate=False)
    with store.engine.connect() as conn:
        version = current_version(conn)
    if version == 0:
        store.close()
        raise CommandError(f"{redact(url)} holds no m5stream runs")
    if version < SCHEMA_VERSION:
        with RunStore(url):  # a writer migrates on opening
            pass
    return store


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, (datetime.datetime, datetime.date)) else v
        for k, v in row.items()
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    text = [[("" if v is None else str(v)) for v in r] for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in text]
    return "\n".join(out)


def _when(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime.datetime) else str(v or "")


def _since(text: str | None) -> datetime.datetime | None:
    from .store import parse_since  # lazy: SQLAlchemy comes with the store module

    try:
        return parse_since(text) if text else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _list(args: argparse.Namespace) -> int:
    since = _since(args.since)
    with _open(_url(args.url)) as store:
        runs = store.list_runs(since=since, where=args.where, limit=args.limit)
    if args.json:
        print(json.dumps([_jsonable(r) for r in runs], indent=2))
        return 0
    rows = [
        (
            r["run_id"][:12],
            _when(r["started_at"]),
            r.get("run_name") or "",
            r.get("kind"),
            f"{r['rank']}/{r['world_size']}",
            f"{r.get('executor')}/{r.get('num_workers')}",
            f"{r['samples']:,}",
            f"{r['samples_per_s']:,.0f}",
            f"{100 * r['input_bound']:.0f}%",
            r.get("bottleneck") or "",
            r.get("status"),
        )
        for r in runs
    ]
    heads = (
        "run",
        "started (UTC)",
        "name",
        "kind",
        "rank",
        "executor/workers",
        "samples",
        "samples/s",
        "input-bound",
        "bottleneck",
        "status",
    )
    print(_table(heads, rows))
    return 0


_SHOW_FIELDS = (
    "run_id",
    "run_name",
    "kind",
    "status",
    "tags",
    "job",
    "host",
    "pid",
    "rank",
    "world_size",
    "started_at",
    "ended_at",
    "source",
    "fingerprint",
    "format",
    "num_samples",
    "weights",
    "seed",
    "shuffle",
    "batch_size",
    "num_workers",
    "executor",
    "m5stream_version",
    "seconds",
    "batches",
    "samples",
    "bytes",
    "samples_per_s",
    "bytes_per_s",
    "read_s",
    "transform_s",
    "decode_s",
    "assemble_s",
    "wait_s",
    "deliver_s",
    "input_bound",
    "s3_requests",
    "s3_retries",
    "s3_bytes",
    "skipped",
    "worker_restarts",
    "bottleneck",
    "bottleneck_reason",
    "intervals_dropped",
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, datetime.datetime):
        return _when(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return "" if v is None else str(v)


def _show(args: argparse.Namespace) -> int:
    with _open(_url(args.db)) as store:
        rid = _resolve(store, args.id)
        run = store.get_run(rid)
        rows = store.intervals(rid)
        srcs = store.sources(rid)
    if args.json:
        out = _jsonable(run)
        out["intervals"] = [_jsonable({k: v for k, v in r.items() if k != "run_id"}) for r in rows]
        out["sources"] = [{k: v for k, v in s.items() if k != "run_id"} for s in srcs]
        print(json.dumps(out, indent=2))
        return 0
    for k in _SHOW_FIELDS:
        print(f"{k:<18} {_fmt(run.get(k))}")
    print()
    per_seq: dict[int, list[str]] = {}
    for s in srcs:
        per_seq.setdefault(s["seq"], []).append(f"{s['source']}={s['samples']}")
    heads = [
        "seq",
        "t (s)",
        "batches",
        "samples",
        "samples/s",
        "MB/s",
        "wait s",
        "input-bound",
        "queue",
        "bottleneck",
    ] + (["sources"] if srcs else [])
    table = []
    for r in rows:
        line = [
            r["seq"],
            f"{r['t_start']:.1f}-{r['t_end']:.1f}",
            r["batches"],
            r["samples"],
            f"{r['samples_per_s']:,.0f}",
            f"{r['bytes_per_s'] / 1e6:,.1f}",
            f"{r['wait_s']:.2f}",
            f"{100 * r['input_bound']:.0f}%",
            r.get("queue_depth"),
            r.get("bottleneck"),
        ]
        if srcs:
            line.append(" ".join(per_seq.get(r["seq"], [])))
        table.append(line)
    print(_table(heads, table))
    return 0


_COMPARE = (
    ("samples/s", "samples_per_s"),
    ("MB/s", "mb_per_s"),
    ("seconds", "seconds"),
    ("samples", "samples"),
    ("input-bound %", "input_bound_pct"),
    ("read s", "read_s"),
    ("transform s", "transform_s"),
    ("decode s", "decode_s"),
    ("assemble s", "assemble_s"),
    ("wait s", "wait_s"),
    ("deliver s", "deliver_s"),
    ("s3 requests", "s3_requests"),
    ("s3 retries", "s3_retries"),
    ("skipped", "skipped"),
    ("worker restarts", "worker_restarts"),
)


def _metric(run: Mapping[str, Any], key: str) -> float:
    if key == "mb_per_s":
        return float(run["bytes_per_s"]) / 1e6
    if key == "input_bound_pct":
        return 100.0 * float(run["input_bound"])
    return float(run[key] or 0)


def _compare(args: argparse.Namespace) -> int:
    with _open(_url(args.db)) as store:
        a = store.get_run(_resolve(store, args.a))
        b = store.get_run(_resolve(store, args.b))
    rows = []
    for label, key in _COMPARE:
        va, vb = _metric(a, key), _metric(b, key)
        rows.append((label, va, vb, vb / va if va else None))
    if args.json:
        print(
            json.dumps(
                {
                    "a": a["run_id"],
                    "b": b["run_id"],
                    "rows": [{"metric": m, "a": x, "b": y, "b_over_a": r} for m, x, y, r in rows],
                    "bottleneck": {"a": a.get("bottleneck"), "b": b.get("bottleneck")},
                },
                indent=2,
            )
        )
        return 0
    table = [(m, _fmt(x), _fmt(y), f"{r:.2f}x" if r is not None else "") for m, x, y, r in rows]
    table += [
        ("bottleneck", a.get("bottleneck"), b.get("bottleneck"), ""),
        (
            "executor/workers",
            f"{a.get('executor')}/{a.get('num_workers')}",
            f"{b.get('executor')}/{b.get('num_workers')}",
            "",
        ),
    ]
    print(_table(("", a["run_id"][:12], b["run_id"][:12], "b/a"), table))
    return 0


def _sql(args: argparse.Namespace) -> int:
    import sqlalchemy.exc  # lazy: the CLI's other commands do not need SQLAlchemy

    store = _open(_url(args.db))
    try:
        cols, rows = store.sql(args.statement)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise CommandError(f"SQL failed: {str(orig).strip().splitlines()[0]}") from None
    finally:
        store.close()
    if args.json:
        out = [_jsonable(dict(zip(cols, r))) for r in rows]
        print(json.dumps(out, indent=2, default=str))
    elif cols:
        print(_table(cols, [[_fmt(v) for v in r] for r in rows]))
    return 0


def _resolve(store: Any, prefix: str) -> str:
    try:
        return str(store.resolve_id(prefix))
    except KeyError as exc:
        raise CommandError(exc.args[0]) from None


def main_runs(args: argparse.Namespace) -> int:
    return _guard(
        "runs",
        {"list": _list, "show": _show, "compare": _compare, "sql": _sql}[args.action or "list"],
        args,
    )


def main_report(args: argparse.Namespace) -> int:
    def run(a: argparse.Namespace) -> int:
        from .report import write_report  # lazy: see _since

        since = _since(a.since)
        with _open(_url(a.url)) as store:
            rid = _resolve(store, a.run) if a.run else None
            path = write_report(
                store, a.output, run_id=rid, since=since, where=a.where, limit=a.limit
            )
        print(f"wrote {path}")
        return 0

    return _guard("report", run, args)


def _guard(cmd: str, fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except CommandError as exc:
        print(f"m5stream {cmd}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import sqlalchemy.exc  # lazy: see above

        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
            orig = getattr(exc, "orig", None) or exc
            line = str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
            print(f"m5stream {cmd}: error: {line}", file=sys.stderr)
            return 2
        raise


def normalize_argv(argv: list[str]) -> list[str]:
    """``runs [URL] ...`` is ``runs list [URL] ...``."""
    if argv and argv[0] == "runs":
        rest = argv[1:]
        if not rest or (rest[0] not in RUNS_ACTIONS and rest[0] not in ("-h", "--help")):
            return ["runs", "list", *rest]
    return argv


def add_parsers(sub: Any) -> None:
    """The ``runs`` and ``report`` subcommands on the CLI's subparsers ``sub``."""
    r = sub.add_parser(
        "runs",
        help="list, show, compare and query recorded runs",
        description="Recorded runs (Loader(record=...)). URL defaults to $M5STREAM_RECORD, "
        "then the cache's runs.db. ID: any unique prefix of a run id.",
    )
    acts = r.add_subparsers(dest="action", parser_class=type(r))
    ls = acts.add_parser("list", help="runs, newest first (the default action)")
    ls.add_argument("url", nargs="?", default=None, metavar="URL")
    ls.add_argument("--since", default=None, help="e.g. 7d, 12h, 30m, or an ISO date (UTC)")
    ls.add_argument("--where", default=None, metavar="SQL", help="a SQL condition on runs")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true", help="print JSON")
    sh = acts.add_parser("show", help="one run with its intervals")
    sh.add_argument("id")
    cmp = acts.add_parser("compare", help="two runs' stages and throughput side by side")
    cmp.add_argument("a", metavar="ID")
    cmp.add_argument("b", metavar="ID")
    q = acts.add_parser("sql", help="read-only SQL on the run database")
    q.add_argument("statement", metavar="SQL")
    for p in (sh, cmp, q):
        p.add_argument("--db", default=None, metavar="URL", help="the run database")
        p.add_argument("--json", action="store_true", help="print JSON")
    rep = sub.add_parser(
        "report",
        help="write a static HTML page of recorded runs",
        description="One self-contained HTML file: sortable runs, throughput over time, stage "
        "breakdown, input-bound against throughput, mixture proportions. No network fetches.",
    )
    rep.add_argument("url", nargs="?", default=None, metavar="URL")
    rep.add_argument("-o", "--output", default="report.html", metavar="PATH")
    rep.add_argument("--run", default=None, metavar="ID", help="the run shown first")
    rep.add_argument("--since", default=None)
    rep.add_argument("--where", default=None, metavar="SQL")
    rep.add_argument("--limit", type=int, default=500)
