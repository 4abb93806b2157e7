"""Run records on SQLite: URLs and options, the schema and its migration from version 1, a
Loader run and a bench run read back exactly, the recorder's failure handling, the
``m5stream runs`` commands and the report's HTML."""

from __future__ import annotations

import datetime
import json
import logging
import re
import time
import types
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from m5stream.cli import main
from m5stream.config import LoaderConfig
from m5stream.errors import ConfigError
from m5stream.records import redact, resolve_url
from m5stream.records.recorder import Recorder
from m5stream.records.report import build_report
from m5stream.records.schema import SCHEMA_VERSION, SchemaError, metadata, migrate
from m5stream.records.store import RunStore, parse_since
from m5stream.stats import Stats
from tests.records_common import (
    MIX_INTERVALS,
    MIX_WEIGHTS,
    check_loader_run,
    recorded_loader_run,
    recorded_mixture_run,
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


# ----------------------------------------------------------------------------- options
def test_urls_resolve_and_hide_passwords(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("M5STREAM_CACHE", str(tmp_path))
    monkeypatch.delenv("M5STREAM_RECORD", raising=False)
    assert resolve_url(True) == f"sqlite:///{tmp_path / 'runs.db'}"
    assert resolve_url(None) is None and resolve_url(False) is None and resolve_url("0") is None
    assert (
        resolve_url("postgresql://u:pw@127.0.0.1:5/db")
        == "postgresql+psycopg://u:pw@127.0.0.1:5/db"
    )
    assert resolve_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert resolve_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("M5STREAM_RECORD", "sqlite:////tmp/e.db")
    assert resolve_url(None) == "sqlite:////tmp/e.db"
    with pytest.raises(ConfigError, match="unsupported database URL scheme 'mysql'"):
        resolve_url("mysql://h/db")
    assert redact("postgresql+psycopg://me:s3cret@127.0.0.1:5/db") == (
        "postgresql+psycopg://me:***@127.0.0.1:5/db"
    )
    assert redact("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_config_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("M5STREAM_RECORD", raising=False)
    monkeypatch.delenv("M5STREAM_METRICS_PORT", raising=False)
    c = LoaderConfig.build(4)
    assert (c.record, c.metrics_port, c.tags, c.run_name, c.record_interval) == (
        None,
        None,
        (),
        None,
        10.0,
    )
    monkeypatch.setenv("M5STREAM_RECORD", "1")
    monkeypatch.setenv("M5STREAM_METRICS_PORT", "9109")
    c = LoaderConfig.build(4, tags={"b": 2, "a": "x"}, run_name="n")
    assert (c.record, c.metrics_port, c.tags, c.run_name) == (
        True,
        9109,
        (("a", "x"), ("b", "2")),
        "n",
    )
    assert LoaderConfig.build(4, record=None, metrics_port="0.0.0.0:9").metrics_port == "0.0.0.0:9"
    assert LoaderConfig.build(4, record=None).record is None  # explicit beats the environment
    for bad in (
        {"metrics_port": 70000},
        {"metrics_port": "x"},
        {"record": 3},
        {"record_interval": 0},
        {"tags": 5},
    ):
        with pytest.raises(ConfigError):
            LoaderConfig.build(4, **bad)


def test_since_durations_and_dates() -> None:
    now = datetime.datetime(2026, 5, 10, 12, 0, 0)
    assert parse_since("7d", now) == datetime.datetime(2026, 5, 3, 12, 0, 0)
    assert parse_since("90m", now) == datetime.datetime(2026, 5, 10, 10, 30, 0)
    assert parse_since("2026-05-01", now) == datetime.datetime(2026, 5, 1)
    assert parse_since("2026-05-01T02:00:00+02:00", now) == datetime.datetime(2026, 5, 1)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("last week", now)


# ----------------------------------------------------------------------------- schema
def test_fresh_schema_matches_the_declared_tables(url: str) -> None:
    with RunStore(url) as store:
        assert store.version == SCHEMA_VERSION == 2
        insp = sa.inspect(store.engine)
        for name, table in metadata.tables.items():
            got = {c["name"] for c in insp.get_columns(name)}
            assert got == {c.name for c in table.columns}, name
        with store.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version FROM m5stream_schema")).all()
        assert [v[0] for v in versions] == [1, 2]
        assert store.migrate() == 2  # idempotent


def _v1_rows() -> tuple[dict[str, object], list[dict[str, object]]]:
    run = {
        "run_id": "a" * 32,
        "run_name": "old",
        "tags": {"k": "v"},
        "host": "h",
        "pid": 7,
        "rank": 1,
        "world_size": 2,
        "started_at": datetime.datetime(2025, 1, 1, 0, 0, 0),
        "status": "finished",
        "source": "/d/*.tar",
        "fingerprint": "f" * 64,
        "format": "tar",
        "num_samples": 100,
        "seed": 3,
        "batch_size": 10,
        "num_workers": 2,
        "executor": "processes",
        "m5stream_version": "0.0.9",
        "seconds": 2.0,
        "batches": 5,
        "samples": 50,
        "bytes": 5000,
        "samples_per_s": 25.0,
        "bytes_per_s": 2500.0,
        "wait_s": 1.5,
        "input_bound": 0.75,
        "bottleneck": "decode",
    }
    ivs = [
        {
            "run_id": "a" * 32,
            "seq": i,
            "at": datetime.datetime(2025, 1, 1, 0, 0, i),
            "t_start": float(i),
            "t_end": float(i + 1),
            "batches": 2 + i,
            "samples": 20 + 10 * i,
        }
        for i in range(2)
    ]
    return run, ivs


def test_migration_from_version_1_keeps_every_row(url: str) -> None:
    engine = sa.create_engine(url)
    assert migrate(engine, target=1) == 1
    run, ivs = _v1_rows()
    v1 = sa.MetaData()
    v1.reflect(engine)
    assert "interval_sources" not in v1.tables and "kind" not in v1.tables["runs"].c
    with engine.begin() as conn:
        conn.execute(v1.tables["runs"].insert(), [run])
        conn.execute(v1.tables["intervals"].insert(), ivs)
    engine.dispose()
    with RunStore(url) as store:  # a writer opening the old database migrates it
        assert store.version == 2
        got = store.get_run("a" * 32)
        assert {k: got[k] for k in run} == run
        assert (got["kind"], got["intervals_dropped"], got["weights"], got["job"]) == (
            "loader",
            0,
            None,
            None,
        )
        rows = store.intervals("a" * 32)
        assert [{k: r[k] for k in ivs[0]} for r in rows] == ivs
        assert [r["queue_depth"] for r in rows] == [None, None]
        assert [r["read_s"] for r in rows] == [0.0, 0.0]
        # and the new schema takes a new run with its new columns
        store.write(
            "b" * 32,
            start={**run, "kind": "bench", "weights": {"a": 1.0}},
            rows=[{**ivs[0], "queue_depth": 3}],
            sources=[{"seq": 0, "source": "a", "samples": 20}],
        )
        assert store.get_run("b" * 32)["weights"] == {"a": 1.0}
        assert store.sources("b" * 32) == [
            {"run_id": "b" * 32, "seq": 0, "source": "a", "samples": 20}
        ]


def test_a_newer_schema_is_refused(url: str) -> None:
    with RunStore(url) as store, store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO m5stream_schema VALUES (99, '2030-01-01', 'future')"))
    with pytest.raises(SchemaError, match="schema version 99, newer"):
        RunStore(url)


# ----------------------------------------------------------------------------- runs
def test_loader_run_reads_back_exactly(url: str, tmp_path: Path) -> None:
    exp = recorded_loader_run(url, tmp_path / "data")
    with RunStore(url) as store:
        check_loader_run(store, exp)
        assert store.get_run(exp["run_id"])["s3_requests"] == 0


def test_loader_run_with_worker_processes(url: str, tmp_path: Path) -> None:
    exp = recorded_loader_run(url, tmp_path / "data", num_workers=2)
    assert exp["executor"] == "processes"
    with RunStore(url) as store:
        check_loader_run(store, exp)
        rows = store.intervals(exp["run_id"])
    assert all(r["queue_depth"] is not None and r["queue_depth"] >= 0 for r in rows)


def test_mixture_counts_and_weights(url: str) -> None:
    rid = recorded_mixture_run(url)
    with RunStore(url) as store:
        run = store.get_run(rid)
        got = store.sources(rid)
        rows = store.intervals(rid)
    assert run["weights"] == MIX_WEIGHTS
    want = [
        {"run_id": rid, "seq": seq, "source": name, "samples": n}
        for seq, counts in enumerate(MIX_INTERVALS)
        for name, n in sorted(counts.items())
    ]
    assert got == want
    assert [r["samples"] for r in rows] == [sum(c.values()) for c in MIX_INTERVALS]
    assert run["samples"] == sum(sum(c.values()) for c in MIX_INTERVALS) == 256


def test_bench_run_is_recorded_with_its_result(url: str, tmp_path: Path) -> None:
    from m5stream.bench import run_bench
    from tests.helpers import make_tar_dataset

    src = make_tar_dataset(tmp_path / "data", shards=2, per_shard=40)
    result = run_bench(
        src,
        batch_size=8,
        workers=0,
        batches=6,
        progress=False,
        record=url,
        run_name="bench-run",
        tags={"suite": "unit"},
    )
    with RunStore(url) as store:
        (run,) = store.list_runs()
    assert (run["kind"], run["run_name"], run["tags"]) == ("bench", "bench-run", {"suite": "unit"})
    assert run["bottleneck"] == result["bottleneck"]["stage"]
    assert run["bottleneck_reason"] == result["bottleneck"]["reason"]
    stored = run["result"]
    assert stored["result"] == json.loads(json.dumps(result["result"]))
    assert stored["stages"] == json.loads(json.dumps(result["stages"]))
    assert stored["source"]["uri"] == src and stored["schema"] == "m5stream.bench/1"
    # the loader's own counts: the first batch plus the timed ones
    assert run["batches"] == result["result"]["batches"] + 1
    assert run["samples"] == result["result"]["samples"] + 8
    assert run["status"] == "finished"


def test_unwritable_database_is_logged_once_and_costs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = f"sqlite:///{tmp_path / 'missing-dir' / 'sub' / 'runs.db'}"
    stats = Stats()
    start = {"run_id": "c" * 32, "started_at": datetime.datetime(2026, 1, 1), "num_workers": 0}
    with caplog.at_level(logging.INFO, logger="m5stream.records"):
        rec = Recorder(start, stats, url=bad, interval=0.01)
        batch = {"x": np.zeros((4, 2)), "__index__": np.arange(4)}
        for i in range(30):
            stats.batches += 1
            stats.samples += 4
            rec.step(types.SimpleNamespace(step=i, batch=batch, seconds={}, skipped=[]))
            time.sleep(0.01)
        t0 = time.perf_counter()
        rec.close()
        closing = time.perf_counter() - t0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "cannot write run " + "c" * 32 in errors[0].getMessage()
    assert rec.errors >= 1 and closing < 0.5
    assert rec.bytes == 30 * 4 * 2 * 8


def test_pending_rows_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from m5stream.records import recorder as recorder_mod

    monkeypatch.setattr(recorder_mod, "MAX_PENDING", 3)
    bad = f"sqlite:///{tmp_path / 'no' / 'runs.db'}"
    stats = Stats()
    rec = Recorder({"run_id": "d" * 32}, stats, url=bad, interval=3600)
    for i in range(6):
        stats.batches += 1
        rec.step(types.SimpleNamespace(step=i, batch=None, seconds={}, skipped=[]))
        rec.mark()
    assert len(rec._pending) == 3 and rec.dropped == 3
    assert [r["seq"] for r, _ in rec._pending] == [3, 4, 5]
    rec.close()


# ----------------------------------------------------------------------------- commands
def _seed_runs(url: str, tmp_path: Path) -> list[str]:
    a = recorded_loader_run(url, tmp_path / "a")["run_id"]
    b = recorded_mixture_run(url)  # started 2026-01-02
    return [a, b]


def test_runs_commands(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _seed_runs(url, tmp_path)
    assert main(["runs", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in listed] == [a, b]  # newest first
    assert main(["runs", url, "--since", "30d", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [a]
    assert main(["runs", "list", url, "--where", "run_name = 'mixture'", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [b]
    assert main(["runs", url]) == 0
    text = capsys.readouterr().out
    assert a[:12] in text and b[:12] in text and "exact-run" in text

    assert main(["runs", "show", b[:6], "--db", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_id"] == b and len(shown["intervals"]) == len(MIX_INTERVALS)
    assert [s["samples"] for s in shown["sources"] if s["seq"] == 2] == [31, 13, 20]  # en, img, ja
    assert main(["runs", "show", a, "--db", url]) == 0
    assert "exact-run" in capsys.readouterr().out

    assert main(["runs", "compare", a, b, "--db", url, "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    with RunStore(url) as store:
        ra, rb = store.get_run(a), store.get_run(b)
    samples = next(r for r in cmp["rows"] if r["metric"] == "samples")
    assert (samples["a"], samples["b"]) == (ra["samples"], rb["samples"]) == (55, 256)
    assert cmp["bottleneck"] == {"a": ra["bottleneck"], "b": rb["bottleneck"]}
    assert main(["runs", "compare", a, b, "--db", url]) == 0
    assert "samples/s" in capsys.readouterr().out

    assert (
        main(
            [
                "runs",
                "sql",
                "SELECT run_name, samples FROM runs ORDER BY samples",
                "--db",
                url,
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [
        {"run_name": "exact-run", "samples": 55},
        {"run_name": "mixture", "samples": 256},
    ]


def test_runs_sql_is_read_only_and_errors_are_one_line(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_runs(url, tmp_path)
    assert main(["runs", "sql", "DELETE FROM runs", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "readonly" in err.replace("read-only", "readonly")
    with RunStore(url) as store:
        assert len(store.list_runs()) == 2
    assert main(["runs", "show", "ffff", "--db", url]) == 2
    assert "no run 'ffff'" in capsys.readouterr().err
    assert main(["runs", f"sqlite:///{tmp_path / 'nothing.db'}"]) == 2
    assert "no run database" in capsys.readouterr().err
    assert main(["runs", url, "--since", "yesterday"]) == 2
    assert main(["runs", url, "--where", "no_such_column = 1"]) == 2
    assert "no_such_column" in capsys.readouterr().err


def test_report_html_is_self_contained(url: str, tmp_path: Path) -> None:
    a, b = _seed_runs(url, tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", url, "-o", str(out), "--run", b[:8]]) == 0
    page = out.read_text()
    assert re.findall(r'<tr data-run="([0-9a-f]{32})"', page) == [a, b]
    assert f'data-chosen="{b}"' in page
    for kind in ("throughput", "stages", "scatter", "sources"):
        assert f'data-plot="{kind}"' in page
    # no fetches: nothing but the SVG namespace names a URL, nothing loads a file
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)
    with RunStore(url) as store:
        assert build_report(store, limit=1).count("<tr data-run=") == 1


def test_a_blocked_interval_stays_in_the_next_row(url: str) -> None:
    """No step ended in an interval (the trainer blocked on its next batch): no row, and the
    next row spans the blocked time too, so its wait share is real, never above 1."""
    stats = Stats()
    rec = Recorder(
        {
            "run_id": "9" * 32,
            "started_at": datetime.datetime(2026, 1, 1),
            "executor": "processes",
            "num_workers": 2,
        },
        stats,
        url=url,
        interval=3600,
    )
    batch = {"x": np.zeros((2, 2), np.float32), "__index__": np.arange(2)}

    def step(wait: float) -> None:
        stats.batches += 1
        stats.samples += 2
        stats.add_seconds({"wait": wait})
        rec.step(types.SimpleNamespace(step=0, batch=batch, seconds={}, skipped=[]))

    step(0.0)
    rec.mark()
    time.sleep(0.05)
    rec.mark()  # blocked: nothing ended
    time.sleep(0.05)
    step(0.1)  # the batch that ends the block: its wait covers both sleeps
    rec.mark()
    rec.close()
    assert rec.finished.wait(10)
    with RunStore(url) as store:
        rows = store.intervals("9" * 32)
    assert [r["seq"] for r in rows] == [0, 1]
    assert rows[1]["t_end"] - rows[1]["t_start"] >= 0.1
    assert 0.5 < rows[1]["input_bound"] <= 1.0


def _open_fresh(path: str, barrier: object, out: object) -> None:
    store = RunStore(f"sqlite:///{path}", migrate=False)
    barrier.wait(30)  # type: ignore[attr-defined]
    try:
        store.migrate()  # the first connection of each, at one instant, as writers start
        with store.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        store.close()
        out.put(mode)  # type: ignore[attr-defined]
    except Exception as e:  # reported to the test, which names it
        out.put(repr(e))  # type: ignore[attr-defined]


def test_many_processes_opening_a_fresh_sqlite_file_all_get_wal(tmp_path: Path) -> None:
    """Switching a fresh file to WAL needs an exclusive lock that SQLite refuses at once (no busy
    wait) while another connection holds one: 8 openers at the same instant used to lose about
    one in fifty connections to "database is locked" (CI saw it in the concurrent-writers test)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    results: list[object] = []
    for trial in range(12):
        path = str(tmp_path / f"fresh{trial}.db")
        barrier, out = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open_fresh, args=(path, barrier, out)) for _ in range(8)]
        for p in procs:
            p.start()
        results += [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    assert results == ["wal"] * (12 * 8)
