"""Run records against real databases: SQLite and a throwaway PostgreSQL server
(``tests/postgres.py``, started once per session on loopback). Each backend records a Loader
run and a bench run and reads them back exactly, takes 4 concurrent writer processes x 200
intervals without losing a row, and migrates from schema version 1. A database that is down
(a closed port) or hangs (a listener that never answers) leaves the loop's per-batch time
unchanged and logs exactly one error."""

from __future__ import annotations

import datetime
import logging
import multiprocessing as mp
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import m5stream as m5
from m5stream.records import resolve_url
from m5stream.records import store as store_mod
from m5stream.records.schema import migrate
from m5stream.records.store import RunStore
from tests.postgres import PostgresServer, pg_bindir
from tests.records_common import check_loader_run, recorded_loader_run

WRITERS, INTERVALS = 4, 200


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if pg_bindir() is None:
        why = "PostgreSQL server binaries are not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(why)  # scripts/setup.sh installs them: in CI their absence is a failure
        pytest.skip(why)
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


_DB_COUNTER = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend (a new PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"runs_{next(_DB_COUNTER)}_{int(time.time() * 1000) % 10**9}"
    admin = sa.create_engine(resolve_url(server.url), isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    yield server.url.rsplit("/", 1)[0] + "/" + name
    admin = sa.create_engine(resolve_url(server.url), isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


def _store(url: str) -> RunStore:
    resolved = resolve_url(url)
    assert resolved is not None
    return RunStore(resolved)


def test_loader_and_bench_runs_read_back_exactly(db_url: str, tmp_path: Path) -> None:
    from m5stream.bench import run_bench
    from tests.helpers import make_tar_dataset

    exp = recorded_loader_run(db_url, tmp_path / "data")
    src = make_tar_dataset(tmp_path / "bench", shards=2, per_shard=40)
    result = run_bench(
        src, batch_size=8, workers=0, batches=5, progress=False, record=db_url, run_name="bench-run"
    )
    with _store(db_url) as store:
        check_loader_run(store, exp)
        runs = store.list_runs()
        assert [r["kind"] for r in runs] == ["bench", "loader"]
        bench = runs[0]
        assert bench["run_name"] == "bench-run" and bench["status"] == "finished"
        assert bench["result"]["result"]["samples"] == result["result"]["samples"] == 40
        assert bench["samples"] == 48 and bench["batches"] == 6  # with the first batch
        assert bench["bottleneck"] == result["bottleneck"]["stage"]
        assert sum(r["samples"] for r in store.intervals(bench["run_id"])) == 48


def test_runs_commands_and_read_only_sql(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from m5stream.cli import main

    exp = recorded_loader_run(db_url, tmp_path / "data")
    rid = exp["run_id"]
    assert main(["runs", db_url, "--where", "skipped = 5", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [rid]
    assert main(["runs", "show", rid[:10], "--db", db_url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["samples"] == 55 and sum(r["samples"] for r in shown["intervals"]) == 55
    assert (
        main(["runs", "sql", "SELECT count(*) AS n FROM intervals", "--db", db_url, "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"n": len(shown["intervals"])}]
    for statement in ("DELETE FROM runs", "DROP TABLE intervals", "UPDATE runs SET seed = 1"):
        assert main(["runs", "sql", statement, "--db", db_url]) == 2
        assert "read" in capsys.readouterr().err.lower()  # read-only, refused by the database
    with _store(db_url) as store:
        assert store.get_run(rid)["seed"] == 11 and len(store.intervals(rid)) > 0
    out = tmp_path / "r.html"
    assert main(["report", db_url, "-o", str(out)]) == 0
    assert f'<tr data-run="{rid}"' in out.read_text()


def _writer(url: str, index: int, barrier: mp.synchronize.Barrier) -> None:
    """One process: open the (possibly empty) database together with the others, then one
    transaction per interval."""
    from m5stream.records.schema import utcnow

    barrier.wait(30)
    resolved = resolve_url(url)
    assert resolved is not None
    store = RunStore(resolved)  # the four migrate an empty database at the same moment
    rid = f"{index:032x}"
    store.write(
        rid,
        start={
            "started_at": utcnow(),
            "rank": index,
            "world_size": WRITERS,
            "run_name": f"w{index}",
        },
    )
    for seq in range(INTERVALS):
        row = {
            "seq": seq,
            "at": utcnow(),
            "t_start": float(seq),
            "t_end": seq + 1.0,
            "batches": 1,
            "samples": index * 1000 + seq,
        }
        src = [{"seq": seq, "source": f"s{index}", "samples": seq}]
        store.write(rid, rows=[row], sources=src, totals={"samples": (seq + 1) * 10})
    store.close()


def test_concurrent_writers_lose_no_row(db_url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(db_url, i, barrier)) for i in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with _store(db_url) as store:
        runs = {r["run_id"]: r for r in store.list_runs()}
        assert sorted(runs) == [f"{i:032x}" for i in range(WRITERS)]
        for i in range(WRITERS):
            rid = f"{i:032x}"
            rows = store.intervals(rid)
            assert [(r["seq"], r["samples"]) for r in rows] == [
                (s, i * 1000 + s) for s in range(INTERVALS)
            ]
            assert [s["samples"] for s in store.sources(rid)] == list(range(INTERVALS))
            assert runs[rid]["samples"] == INTERVALS * 10 and runs[rid]["rank"] == i
        with store.engine.connect() as conn:
            n = conn.execute(sa.text("SELECT count(*) FROM intervals")).scalar()
            versions = conn.execute(sa.text("SELECT version FROM m5stream_schema")).all()
    assert n == WRITERS * INTERVALS
    assert sorted(v[0] for v in versions) == [1, 2]  # migrated once, not four times


def test_migration_from_version_1(db_url: str) -> None:
    resolved = resolve_url(db_url)
    assert resolved is not None
    engine = sa.create_engine(resolved)
    assert migrate(engine, target=1) == 1
    v1 = sa.MetaData()
    v1.reflect(engine)
    assert set(v1.tables) == {"m5stream_schema", "runs", "intervals"}
    when = datetime.datetime(2025, 6, 1, 8, 30, 0, 123456)
    run = {
        "run_id": "e" * 32,
        "run_name": "v1 run",
        "tags": {"x": "y"},
        "rank": 0,
        "world_size": 1,
        "started_at": when,
        "status": "finished",
        "samples": 640,
        "batches": 10,
        "seconds": 3.5,
        "input_bound": 0.25,
        "bottleneck": "fetch",
    }
    ivs = [
        {
            "run_id": "e" * 32,
            "seq": s,
            "at": when,
            "t_start": s * 1.0,
            "t_end": s + 1.0,
            "samples": 64 * (s + 1),
            "wait_s": 0.125 * s,
        }
        for s in range(3)
    ]
    with engine.begin() as conn:
        conn.execute(v1.tables["runs"].insert(), [run])
        conn.execute(v1.tables["intervals"].insert(), ivs)
    engine.dispose()
    with _store(db_url) as store:
        assert store.version == 2
        got = store.get_run("e" * 32)
        assert {k: got[k] for k in run} == run
        assert (got["kind"], got["intervals_dropped"], got["shuffle"]) == ("loader", 0, None)
        assert [{k: r[k] for k in ivs[0]} for r in store.intervals("e" * 32)] == ivs
        assert store.sources("e" * 32) == []
        _, rows = store.sql("SELECT count(*) FROM interval_sources")
        assert rows == [(0,)]


# ----------------------------------------------------------------------------- failures
class _Silent:
    """A TCP listener on loopback that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _per_batch(ds: m5.Dataset, record: str | None, steps: int) -> tuple[float, float, list[str]]:
    """(median seconds per batch, seconds close() took, error messages of m5stream.records)
    of a loop doing 3 ms of "training" per batch."""
    handler = _Capture()
    logging.getLogger("m5stream.records").addHandler(handler)
    try:
        times = []
        lo = m5.Loader(ds, 16, output="numpy", record=record, record_interval=0.05)
        it = iter(lo)
        t_prev = time.perf_counter()
        for _ in range(steps):
            next(it)
            time.sleep(0.003)
            now = time.perf_counter()
            times.append(now - t_prev)
            t_prev = now
        it.close()  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        lo.close()
        closing = time.perf_counter() - t0
    finally:
        logging.getLogger("m5stream.records").removeHandler(handler)
    return statistics.median(times), closing, handler.errors


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors.append(record.getMessage())


@pytest.mark.parametrize("failure", ["closed-port", "hanging-server"])
def test_database_down_or_hanging_costs_the_loop_nothing(
    failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "CONNECT_TIMEOUT", 1)
    silent = _Silent() if failure == "hanging-server" else None
    port = silent.port if silent else _closed_port()
    url = f"postgresql://m5:secret-pw@127.0.0.1:{port}/runs"
    ds = m5.dataset("synthetic://100000?shard_size=1000&shape=16")
    steps = 700  # ~2.5 s: several write attempts, each failing or timing out after 1 s
    try:
        base, _, _ = _per_batch(ds, None, 150)
        off = []
        on = []
        for _ in range(2):  # alternate, so both sides see the same machine load
            off.append(_per_batch(ds, None, 150)[0])
            med, closing, errors = _per_batch(ds, url, steps)
            on.append(med)
            assert len(errors) == 1, errors
            assert f"127.0.0.1:{port}" in errors[0] and "secret-pw" not in errors[0]
            assert closing < 0.5  # close() does not wait for a failing database
    finally:
        if silent:
            silent.close()
    if silent is not None:
        assert silent.conns  # the recorder really did connect and wait
    # median per-batch time: the 3 ms step plus the loader; recording to a dead database
    # adds nothing beyond noise
    print(f"{failure}: per-batch median off {[base, *off]} s, on {on} s")
    assert statistics.median(on) <= statistics.median([base, *off]) * 1.10 + 0.0005, (on, off)
