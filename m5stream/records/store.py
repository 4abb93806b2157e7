"""The run database: engines set up for many concurrent writers, writes, and query helpers.

:class:`RunStore` opens a SQLAlchemy URL (see :mod:`.urls`) once per process. SQLite runs in
WAL mode with a 30 s busy timeout, and every writing transaction begins ``IMMEDIATE``, so the
ranks of one job on one host append concurrently without "database is locked" failures and
without lost rows; PostgreSQL goes through psycopg 3 with a connect timeout and a statement
timeout, so a database that is down or hangs fails in bounded time. ``read_only=True`` makes
the database itself refuse writes (SQLite ``PRAGMA query_only``; PostgreSQL
``default_transaction_read_only``): what ``m5stream runs sql`` runs under.

Rows are plain dicts keyed by column name; time columns are naive UTC datetimes.
"""

from __future__ import annotations

import datetime
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .schema import interval_sources, intervals, migrate, runs
from .urls import redact

__all__ = ["RunStore", "parse_since"]

#: seconds a connection attempt to PostgreSQL may take, and one statement
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT_MS = 15_000
#: seconds a SQLite writer waits for the write lock
BUSY_TIMEOUT_S = 30.0


def _wal(cur: Any) -> None:
    """Put the database in WAL mode (a persistent property of the file, so only the first
    connection to a fresh database changes it). Changing the journal mode needs an exclusive
    lock, and SQLite answers "database is locked" at once, without the busy handler, when
    another connection creates or migrates the same fresh file at that moment: so retry
    within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchall()[0][0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _engine(url: str, read_only: bool) -> sa.Engine:
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        eng = sa.create_engine(u, connect_args={"timeout": BUSY_TIMEOUT_S})

        @sa.event.listens_for(eng, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # transactions begin as below, not in the driver
            cur = dbapi.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if read_only:
                cur.execute("PRAGMA query_only = 1")
            else:
                _wal(cur)
                cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @sa.event.listens_for(eng, "begin")
        def _begin(conn: sa.Connection) -> None:
            # IMMEDIATE takes the write lock at BEGIN, where the busy timeout waits for it
            # (a deferred transaction that upgrades later fails at once on contention)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return eng
    options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    return sa.create_engine(
        u,
        pool_pre_ping=True,
        pool_size=2,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            "options": options,
            "application_name": "m5stream",
        },
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` ago, or an ISO date/time (UTC), as naive UTC."""
    m = _DURATION.match(text)
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    if m:
        return now - datetime.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        t = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since: {text!r} is neither a duration (7d, 12h) nor a date") from None
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t


def _row(r: sa.Row[Any]) -> dict[str, Any]:
    return dict(r._mapping)


class RunStore:
    """One run database (see module docstring). ``migrate=True`` brings its schema to the
    latest version first (the writers do; readers of a fresh database get empty results)."""

    def __init__(self, url: str, *, read_only: bool = False, migrate: bool = True) -> None:
        self.url = url
        self.read_only = read_only
        self.engine = _engine(url, read_only)
        self.version: int | None = None
        if migrate and not read_only:
            self.version = self.migrate()

    def __repr__(self) -> str:
        return f"RunStore({redact(self.url)!r})"

    def migrate(self, target: int | None = None) -> int:
        return migrate(self.engine, target)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def write(
        self,
        run_id: str,
        *,
        start: Mapping[str, Any] | None = None,
        rows: Sequence[Mapping[str, Any]] = (),
        sources: Sequence[Mapping[str, Any]] = (),
        totals: Mapping[str, Any] | None = None,
    ) -> None:
        """One transaction: the run's first row (``start``), interval ``rows`` and their
        per-source ``sources`` rows, and the run's new ``totals``."""
        with self.engine.begin() as conn:
            if start is not None:
                conn.execute(runs.insert(), [{**start, "run_id": run_id}])
            if rows:
                conn.execute(intervals.insert(), [{**r, "run_id": run_id} for r in rows])
            if sources:
                conn.execute(interval_sources.insert(), [{**s, "run_id": run_id} for s in sources])
            if totals:
                conn.execute(runs.update().where(runs.c.run_id == run_id).values(**totals))

    # ------------------------------------------------------------------ queries
    def list_runs(
        self,
        *,
        since: datetime.datetime | None = None,
        where: str | None = None,
        limit: int | None = 100,
        ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first; ``where`` is a SQL condition over the ``runs`` columns."""
        q = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id)
        if since is not None:
            q = q.where(runs.c.started_at >= since)
        if where:
            q = q.where(sa.text(f"({where})"))
        if ids is not None:
            q = q.where(runs.c.run_id.in_(list(ids)))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def resolve_id(self, prefix: str) -> str:
        """The one run whose id starts with ``prefix`` (``KeyError`` when none or several)."""
        if not re.fullmatch(r"[0-9a-f]{1,32}", prefix):
            raise KeyError(f"no run {prefix!r} (run ids are hexadecimal)")
        q = sa.select(runs.c.run_id).where(runs.c.run_id.startswith(prefix)).limit(2)
        with self.engine.connect() as conn:
            found = [r[0] for r in conn.execute(q)]
        if not found:
            raise KeyError(f"no run {prefix!r}")
        if len(found) > 1:
            raise KeyError(f"run id prefix {prefix!r} is ambiguous")
        return str(found[0])

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if r is None:
            raise KeyError(f"no run {run_id!r}")
        return _row(r)

    def intervals(self, run_id: str) -> list[dict[str, Any]]:
        q = sa.select(intervals).where(intervals.c.run_id == run_id).order_by(intervals.c.seq)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def sources(self, run_id: str) -> list[dict[str, Any]]:
        """Per-source samples of each interval, ordered by ``seq`` then source."""
        t = interval_sources
        q = sa.select(t).where(t.c.run_id == run_id).order_by(t.c.seq, t.c.source)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def sql(self, statement: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``statement``; its column names and rows. Open the store with
        ``read_only=True`` to have the database refuse anything but reading."""
        with self.engine.begin() as conn:
            res = conn.exec_driver_sql(statement)
            if not res.returns_rows:
                return [], []
            return list(res.keys()), [tuple(r) for r in res]
