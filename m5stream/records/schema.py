"""The run-record schema (SQLAlchemy Core) and its versioned migrations.

Tables (the latest version, :data:`SCHEMA_VERSION`):

``m5stream_schema``
    one row per applied migration: ``version``, ``applied_at`` (UTC), ``description``.
``runs``
    one row per loader (one rank of a job) or ``m5stream bench`` run: identity (``run_id``,
    ``run_name``, ``tags``, ``job``, ``kind``, ``host``, ``pid``, ``rank``, ``world_size``),
    times (``started_at``, ``updated_at``, ``ended_at``: naive UTC; ``status``: running |
    finished), what was read (``source``, ``fingerprint``, ``format``, ``num_samples``,
    ``weights`` of a mixture), how (``seed``, ``shuffle``, ``batch_size``, ``num_workers``,
    ``executor``), and the totals so far: ``seconds`` (wall time since iteration began),
    ``batches``, ``samples``, ``bytes``, ``samples_per_s``, ``bytes_per_s``, stage seconds
    (``read_s`` ... ``deliver_s``, worker stages summed over workers), ``input_bound`` (the
    trainer's wait share), ``s3_requests``, ``s3_retries``, ``s3_bytes``, ``skipped``,
    ``worker_restarts``, ``bottleneck`` and ``bottleneck_reason`` (as ``m5stream bench``
    names them), ``intervals_dropped`` and ``result`` (a bench run's JSON result).
``intervals``
    one row per recording interval of a run (``run_id``, ``seq`` from 0): ``at``,
    ``t_start``/``t_end`` (seconds since the run started), the interval's deltas of the same
    counters, its rates, ``input_bound``, ``queue_depth`` and ``bottleneck``.
``interval_sources``
    per interval, samples delivered per mixture source (``run_id``, ``seq``, ``source``,
    ``samples``).

Migrations are functions of a connection, applied in order inside one transaction that holds
the database's migration lock (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``), so
that the ranks of a job starting together migrate once. Version 1 is frozen here as it was
first released; each later version only adds. A database newer than this code is refused.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SchemaError",
    "current_version",
    "interval_sources",
    "intervals",
    "metadata",
    "migrate",
    "runs",
    "schema_table",
]

STAGE_COLUMNS = ("read_s", "transform_s", "decode_s", "assemble_s", "wait_s", "deliver_s")
#: PostgreSQL advisory lock key of the migration lock ("m5stream" in ASCII, as an int64)
_PG_LOCK_KEY = 0x6D35737472656D


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of m5stream."""


def _counters() -> list[sa.Column[Any]]:
    """Counter columns shared by ``runs`` (totals) and ``intervals`` (deltas), version 1."""
    return [
        sa.Column("batches", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("samples", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("samples_per_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("bytes_per_s", sa.Float, nullable=False, server_default="0"),
        *(sa.Column(c, sa.Float, nullable=False, server_default="0") for c in STAGE_COLUMNS),
        sa.Column("input_bound", sa.Float, nullable=False, server_default="0"),
        sa.Column("s3_requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("s3_retries", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("s3_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("worker_restarts", sa.Integer, nullable=False, server_default="0"),
    ]


def _v1_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """``runs`` and ``intervals`` as schema version 1 created them (frozen)."""
    r = sa.Table(
        "runs",
        md,
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("run_name", sa.String(200)),
        sa.Column("tags", sa.JSON),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("rank", sa.Integer, nullable=False, server_default="0"),
        sa.Column("world_size", sa.Integer, nullable=False, server_default="1"),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("source", sa.Text),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("format", sa.String(32)),
        sa.Column("num_samples", sa.BigInteger),
        sa.Column("seed", sa.BigInteger),
        sa.Column("batch_size", sa.Integer),
        sa.Column("num_workers", sa.Integer),
        sa.Column("executor", sa.String(16)),
        sa.Column("m5stream_version", sa.String(32)),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        *_counters(),
        sa.Column("bottleneck", sa.String(16)),
    )
    i = sa.Table(
        "intervals",
        md,
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("t_start", sa.Float, nullable=False),
        sa.Column("t_end", sa.Float, nullable=False),
        *_counters(),
    )
    return r, i


# --- the latest schema: version 1 plus what each later migration adds ---------------------
metadata = sa.MetaData()
schema_table = sa.Table(
    "m5stream_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
    sa.Column("description", sa.Text),
)
runs, intervals = _v1_tables(metadata)
#: version 2: mixtures, bench runs, jobs, queue depth, per-source counts
_V2_RUN_COLUMNS = (
    lambda: sa.Column("kind", sa.String(16), nullable=False, server_default="loader"),
    lambda: sa.Column("job", sa.String(200)),
    lambda: sa.Column("shuffle", sa.String(16)),
    lambda: sa.Column("weights", sa.JSON),
    lambda: sa.Column("bottleneck_reason", sa.Text),
    lambda: sa.Column("intervals_dropped", sa.Integer, nullable=False, server_default="0"),
    lambda: sa.Column("result", sa.JSON),
)
_V2_INTERVAL_COLUMNS = (
    lambda: sa.Column("queue_depth", sa.Integer),
    lambda: sa.Column("bottleneck", sa.String(16)),
)
for _make in _V2_RUN_COLUMNS:
    runs.append_column(_make())
for _make in _V2_INTERVAL_COLUMNS:
    intervals.append_column(_make())
interval_sources = sa.Table(
    "interval_sources",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("samples", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(["run_id", "seq"], ["intervals.run_id", "intervals.seq"]),
)
_runs_started = sa.Index("ix_runs_started_at", runs.c.started_at)
_runs_job = sa.Index("ix_runs_job", runs.c.job)


# --- migrations ------------------------------------------------------------------------------
def _add_column(conn: sa.Connection, table: str, column: sa.Column[Any]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` in the connection's dialect (SQLite and PostgreSQL)."""
    d = conn.dialect
    ddl = f"ALTER TABLE {d.identifier_preparer.quote(table)} ADD COLUMN "
    ddl += f"{d.identifier_preparer.quote(column.name)} {column.type.compile(dialect=d)}"
    default = column.server_default
    if default is not None:
        ddl += f" DEFAULT '{default.arg}'"  # type: ignore[attr-defined]  # a text default
    if not column.nullable:
        ddl += " NOT NULL"
    conn.exec_driver_sql(ddl)


def _migrate_1(conn: sa.Connection) -> None:
    md = sa.MetaData()
    for t in _v1_tables(md):
        conn.execute(CreateTable(t))


def _migrate_2(conn: sa.Connection) -> None:
    for make in _V2_RUN_COLUMNS:
        _add_column(conn, "runs", make())
    for make in _V2_INTERVAL_COLUMNS:
        _add_column(conn, "intervals", make())
    conn.execute(CreateTable(interval_sources))
    conn.execute(CreateIndex(_runs_started))
    conn.execute(CreateIndex(_runs_job))


#: ``(version, description, apply)`` in order
MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "runs and intervals", _migrate_1),
    (2, "mixture weights and per-source counts, bench results, jobs, queue depth", _migrate_2),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def current_version(conn: sa.Connection) -> int:
    """The schema version of the database (0: no m5stream tables)."""
    if not sa.inspect(conn).has_table(schema_table.name):
        return 0
    v = conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
    return int(v or 0)


def migrate(engine: sa.Engine, target: int | None = None) -> int:
    """Bring the database to ``target`` (default: :data:`SCHEMA_VERSION`); return its version.

    Safe to call from many processes at once: the migrations run under the database's
    migration lock, and whoever comes second finds them applied.
    """
    target = SCHEMA_VERSION if target is None else target
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.execute(CreateTable(schema_table, if_not_exists=True))
        version = current_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the run database has schema version {version}, newer than this m5stream "
                f"knows ({SCHEMA_VERSION}): upgrade m5stream to write to it"
            )
        for v, description, apply in MIGRATIONS:
            if version < v <= target:
                apply(conn)
                conn.execute(
                    schema_table.insert().values(
                        version=v, applied_at=utcnow(), description=description
                    )
                )
                version = v
    return version


def utcnow() -> datetime.datetime:
    """Now, as the naive UTC datetime every time column holds."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
