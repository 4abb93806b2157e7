"""Tables of the AWS Glue Data Catalog as m5stream sources: ``glue://DATABASE/TABLE``.

Resolution (once per job, like any manifest):

1. ``GetTable`` (boto3's Glue client; region and endpoint from :class:`GlueTable` or the usual
   AWS settings, ``AWS_ENDPOINT_URL_GLUE`` included) gives the location, the format and the
   schema. Table types m5stream cannot read (Iceberg, Delta, Hudi, views) and formats other
   than Parquet, JSON lines and CSV are refused by name.
2. ``GetPartitions`` with ``where`` pushed down as the Glue ``Expression`` (paginated) gives the
   partitions to read; an unpartitioned table reads its location prefix.
3. Every partition location is listed through the S3 storage layer (awscrt; concurrently, one
   listing per partition), leaving out Hive/Spark marker files (``_SUCCESS``, ``.crc`` ...).
   A selected partition with no data files is an error: it names the partition.
4. The manifest holds each object's size and ETag, the format options (CSV delimiter and
   header, column names and types), the partition keys with every shard's values, and the
   snapshot (catalog, database, table, table version, ``where``). Its fingerprint therefore
   changes when the table or any of its files does, and a saved loader state refuses to resume
   on a changed snapshot (``Loader.load_state_dict(..., on_change="new_epoch")`` re-resolves
   explicitly).

Samples get the partition keys as fields, typed by the table's partition key types
(``int``/``bigint`` -> ``int``, ``double`` -> ``float``, ``boolean`` -> ``bool``,
``date`` -> ``datetime.date``, others ``str``; Hive's default partition -> ``None``).
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import os
import posixpath
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from .._pools import process_pool
from ..errors import ConfigError, M5Error, NotFound, PermissionDenied, Unsupported
from ..storage.s3 import S3Config, client, parse_s3_uri
from .build import FormatLookup, build_manifest
from .manifest import Manifest
from .s3list import list_prefix

__all__ = ["GlueTable", "glue_manifest", "partition_value", "table_format"]

_THREADS = 16


def _pool() -> ThreadPoolExecutor:
    """Threads for Glue and listing calls made side by side (kept for the process: a
    resolution is a few short calls, and a pool of its own would start threads every time)."""
    return process_pool("m5-glue", _THREADS)


_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class GlueTable:
    """A table of the Glue Data Catalog (the keyword form of ``glue://DATABASE/TABLE``)."""

    database: str
    table: str
    catalog_id: str | None = None
    region: str | None = None
    endpoint: str | None = None

    @classmethod
    def parse(cls, uri: str) -> GlueTable:
        """``glue://DATABASE/TABLE[?catalog_id=...&region=...]``."""
        u = urlparse(uri)
        parts = [p for p in u.path.split("/") if p]
        if u.scheme != "glue" or not u.netloc or len(parts) != 1:
            raise ConfigError("a Glue source is glue://DATABASE/TABLE", uri=uri)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        unknown = set(q) - {"catalog_id", "region", "endpoint"}
        if unknown:
            raise ConfigError(f"unknown glue:// parameter(s) {sorted(unknown)}", uri=uri)
        return cls(u.netloc, parts[0], q.get("catalog_id"), q.get("region"), q.get("endpoint"))

    @property
    def uri(self) -> str:
        return f"glue://{self.database}/{self.table}"


# ------------------------------------------------------------------ the Glue API
#: environment that decides a Glue client's credentials, region and endpoint
_CLIENT_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_GLUE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def _glue_client(t: GlueTable) -> Any:
    """A boto3 Glue client, kept per process for the same settings: making one loads the
    service model (~0.2 s, most of resolving a table), and botocore clients are thread-safe.
    The key holds the environment that decides credentials and endpoint (hashed: no secret
    is kept in the key) and the pid (a client must not cross a fork)."""
    env = hashlib.sha256(repr([os.environ.get(k) for k in _CLIENT_ENV]).encode()).hexdigest()
    key = (os.getpid(), t.region, t.endpoint, env)
    with _clients_lock:
        got = _clients.get(key)
        if got is None:
            got = _clients[key] = _new_glue_client(t)
            while len(_clients) > 8:
                del _clients[next(iter(_clients))]
    return got


def _new_glue_client(t: GlueTable) -> Any:
    try:
        import boto3  # the [glue] extra, needed only once a glue:// source is resolved
    except ImportError:
        raise ConfigError("glue:// sources need boto3: pip install 'm5stream[glue]'") from None
    session = boto3.session.Session()
    # AWS_REGION as well as boto3's own AWS_DEFAULT_REGION/profile, the S3 layer's order
    region = t.region or os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
    kw: dict[str, Any] = {"region_name": region}
    if t.endpoint:  # else boto3 applies AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL itself
        kw["endpoint_url"] = t.endpoint
    return session.client("glue", **kw)


def _call(t: GlueTable, what: str, fn: Any, **kw: Any) -> Any:
    """One Glue call, its errors mapped to m5stream's (never echoing credentials)."""
    from botocore.exceptions import (  # with boto3: see _new_glue_client
        BotoCoreError,
        ClientError,
        NoCredentialsError,
    )

    try:
        return fn(**kw)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", "")
        if code == "EntityNotFoundException":
            raise NotFound(f"Glue {what}: {msg}", uri=t.uri) from None
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            raise PermissionDenied(
                f"Glue {what}: access denied ({code}: {msg})", uri=t.uri
            ) from None
        if code == "InvalidInputException" and "Expression" in kw:
            raise ConfigError(
                f"malformed where expression {kw['Expression']!r}: {msg}", uri=t.uri
            ) from None
        raise M5Error(f"Glue {what} failed ({code}: {msg})", uri=t.uri) from None
    except NoCredentialsError:
        raise PermissionDenied(f"Glue {what}: no AWS credentials found", uri=t.uri) from None
    except BotoCoreError as exc:
        raise M5Error(f"Glue {what} failed: {exc}", uri=t.uri) from None


def _partitions(t: GlueTable, glue: Any, where: str | None) -> list[dict[str, Any]]:
    kw: dict[str, Any] = {"DatabaseName": t.database, "TableName": t.table}
    if t.catalog_id:
        kw["CatalogId"] = t.catalog_id
    if where:
        kw["Expression"] = where
    out: list[dict[str, Any]] = []
    while True:
        page = _call(t, "GetPartitions", glue.get_partitions, **kw)
        out.extend(page.get("Partitions", []))
        token = page.get("NextToken")
        if not token:
            return out
        kw["NextToken"] = token


# ------------------------------------------------------------------ table -> format
_SERDE_FORMATS = {
    "org.apache.hadoop.hive.ql.io.parquet.serde.parquethiveserde": "parquet",
    "org.openx.data.jsonserde.jsonserde": "jsonl",
    "org.apache.hive.hcatalog.data.jsonserde": "jsonl",
    "org.apache.hadoop.hive.serde2.lazy.lazysimpleserde": "csv",
    "org.apache.hadoop.hive.serde2.opencsvserde": "csv",
}
_CLASSIFICATIONS = {"parquet": "parquet", "json": "jsonl", "csv": "csv"}


def _unsupported_type(table: dict[str, Any]) -> str | None:
    params = {k.lower(): str(v) for k, v in (table.get("Parameters") or {}).items()}
    kind = params.get("table_type", "").upper()
    if kind in ("ICEBERG", "DELTA", "HUDI"):
        return kind.capitalize()
    if params.get("spark.sql.sources.provider", "").lower() in ("delta", "iceberg", "hudi"):
        return params["spark.sql.sources.provider"].capitalize()
    if table.get("TableType") == "VIRTUAL_VIEW":
        return "a view (VIRTUAL_VIEW)"
    if table.get("TableType") == "GOVERNED":
        return "a governed (Lake Formation) table"
    return None


def table_format(table: dict[str, Any], uri: str) -> tuple[str, dict[str, Any]]:
    """``(format name, format options)`` from the table's classification, SerDe and schema."""
    kind = _unsupported_type(table)
    if kind:
        raise Unsupported(f"{kind} tables are not supported yet", uri=uri)
    sd = table.get("StorageDescriptor") or {}
    serde = sd.get("SerdeInfo") or {}
    lib = (serde.get("SerializationLibrary") or "").lower()
    params = {k.lower(): v for k, v in (table.get("Parameters") or {}).items()}
    classification = str(params.get("classification", "")).lower()
    fmt = _CLASSIFICATIONS.get(classification) or _SERDE_FORMATS.get(lib)
    if fmt is None and "parquet" in (sd.get("InputFormat") or "").lower():
        fmt = "parquet"
    if fmt is None:
        what = classification or lib or sd.get("InputFormat") or "unknown"
        raise Unsupported(
            f"table format {what!r} is not supported yet (Parquet, JSON and CSV are)", uri=uri
        )
    options: dict[str, Any] = {}
    if fmt == "csv":
        sp = serde.get("Parameters") or {}
        cols = sd.get("Columns") or []
        options["column_names"] = [c["Name"] for c in cols]
        options["column_types"] = {c["Name"]: c.get("Type", "string") for c in cols}
        options["header"] = int(params.get("skip.header.line.count", 0) or 0)
        if lib.endswith("opencsvserde"):
            options["delimiter"] = sp.get("separatorChar", ",")
            options["quote_char"] = sp.get("quoteChar", '"')
            options["escape_char"] = sp.get("escapeChar", "\\")
        else:  # LazySimpleSerDe: no quoting, an optional escape character
            options["delimiter"] = sp.get("field.delim", sp.get("serialization.format", ","))
            options["quote_char"] = None
            options["escape_char"] = sp.get("escape.delim")
    return fmt, options


# ------------------------------------------------------------------ partition values
def partition_value(raw: str | None, hive_type: str) -> Any:
    """A partition value (always a string in Glue) as the Python value of its key's type."""
    if raw is None or raw == _HIVE_NULL:
        return None
    t = hive_type.strip().lower()
    if t in ("tinyint", "smallint", "int", "integer", "bigint"):
        return int(raw)
    if t in ("float", "double"):
        return float(raw)
    if t == "boolean":
        return raw.strip().lower() == "true"
    if t == "date":
        return datetime.date.fromisoformat(raw)
    if t.startswith("decimal"):
        return decimal.Decimal(raw)
    return raw


def _is_data_file(key: str) -> bool:
    name = posixpath.basename(key)
    return bool(name) and not name.startswith(("_", ".")) and not key.endswith("_$folder$")


def _location(uri: str, sd: dict[str, Any] | None, what: str) -> str:
    loc = (sd or {}).get("Location") or ""
    if not loc:
        raise ConfigError(f"{what} has no location", uri=uri)
    if loc.startswith(("s3a://", "s3n://")):
        loc = "s3://" + loc.split("://", 1)[1]
    if not loc.startswith("s3://"):
        raise Unsupported(f"{what} is at {loc!r}; only s3:// locations are supported", uri=uri)
    return loc if loc.endswith("/") else loc + "/"


def _data_columns(
    t: GlueTable, table: dict[str, Any], columns: list[str], key_names: list[str]
) -> list[str]:
    """The projected columns stored in the files (partition keys come from the catalog);
    a column the table does not have is a ConfigError naming what it has."""
    schema = [c["Name"] for c in (table.get("StorageDescriptor") or {}).get("Columns") or []]
    missing = [c for c in columns if c not in schema and c not in key_names]
    if missing:
        raise ConfigError(
            f"column(s) {missing} not in table {t.database}.{t.table} "
            f"(columns {schema}, partition keys {key_names})",
            uri=t.uri,
        )
    return [c for c in columns if c not in key_names]


def _partition_location(
    t: GlueTable, part: dict[str, Any], key_names: list[str], table_loc: str
) -> str:
    """Where a partition's files are: its own location, else the Hive layout under the
    table's (``key=value/`` per key)."""
    values = part["Values"]
    if (part.get("StorageDescriptor") or {}).get("Location"):
        return _location(t.uri, part.get("StorageDescriptor"), _describe(key_names, values))
    return table_loc + "".join(f"{k}={v}/" for k, v in zip(key_names, values))


def glue_manifest(
    t: GlueTable,
    *,
    where: str | None = None,
    columns: list[str] | None = None,
    s3: S3Config | None = None,
    formats: FormatLookup,
) -> Manifest:
    """Resolve the table (see module docstring) into a manifest pinned to its snapshot;
    ``formats`` is the format registry that validates the options and counts the shards
    (``m5stream.formats.get_format``: formats sit above the catalog)."""
    glue = _glue_client(t)
    kw: dict[str, Any] = {"DatabaseName": t.database, "Name": t.table}
    if t.catalog_id:
        kw["CatalogId"] = t.catalog_id
    # GetPartitions needs nothing from GetTable, so it runs meanwhile: on an unpartitioned
    # table its (empty or failed) answer is ignored, and GetTable's errors come first
    parts_future = _pool().submit(_partitions, t, glue, where)
    table = _call(t, "GetTable", glue.get_table, **kw)["Table"]
    fmt, options = table_format(table, t.uri)
    table_loc = _location(t.uri, table.get("StorageDescriptor"), f"table {t.database}.{t.table}")
    keys = [
        {"name": k["Name"], "type": k.get("Type", "string")}
        for k in table.get("PartitionKeys") or []
    ]
    key_names = [k["name"] for k in keys]
    if columns is not None:
        options["columns"] = _data_columns(t, table, columns, key_names)
    if keys:
        parts = sorted(parts_future.result(), key=lambda p: p["Values"])
        locations = [(p["Values"], _partition_location(t, p, key_names, table_loc)) for p in parts]
    else:
        if where:
            raise ConfigError(
                f"where={where!r} needs a partitioned table; {t.database}.{t.table} has no "
                "partition keys",
                uri=t.uri,
            )
        locations = [([], table_loc)]
    c = client(s3)

    def list_one(loc: str) -> list[tuple[str, int, str]]:
        bucket, prefix = parse_s3_uri(loc)
        return [
            (f"s3://{bucket}/{o.key}", o.size, o.etag)
            for o in list_prefix(c, bucket, prefix)
            if _is_data_file(o.key)
        ]

    listed = list(_pool().map(list_one, [loc for _, loc in locations]))
    objects: list[tuple[str, int, str]] = []
    shard_values: list[list[str]] = []
    for (values, loc), objs in zip(locations, listed):
        if not objs:
            what = _describe(key_names, values) if keys else f"table {t.database}.{t.table}"
            raise NotFound(f"{what} has no data files at {loc}", uri=t.uri)
        objects.extend(objs)
        shard_values.extend([list(values)] * len(objs))
    options = formats(fmt).validate_options(options)
    if keys:
        options["partition_keys"] = keys
        options["partition_values"] = shard_values
        if columns is not None:
            options["partition_columns"] = [k for k in key_names if k in columns]
    options["glue"] = {
        "catalog_id": table.get("CatalogId") or t.catalog_id,
        "database": t.database,
        "table": t.table,
        "version_id": table.get("VersionId"),
        "where": where,
    }
    root = _common_root([o[0] for o in objects], table_loc)
    return build_manifest(t.uri, fmt, root, objects, options, s3, formats=formats)


def _describe(names: list[str], values: list[str]) -> str:
    return "partition (" + ", ".join(f"{k}={v!r}" for k, v in zip(names, values)) + ")"


def _common_root(uris: list[str], table_loc: str) -> str:
    """The table location when every object is under it (the usual case), else the longest
    common directory (partitions may live elsewhere)."""
    root = table_loc.rstrip("/")
    if all(u.startswith(root + "/") for u in uris):
        return root
    common = posixpath.commonpath([u[len("s3://") :] for u in uris])
    if not re.match(r"[^/]+", common):
        raise Unsupported("partitions span several buckets", uri=table_loc)
    return "s3://" + common
