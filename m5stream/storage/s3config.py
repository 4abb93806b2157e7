"""How to reach S3 (:class:`S3Config`), what a listing gives (:class:`ObjectInfo`), and
``s3://`` URIs. Plain values, importable without awscrt; the client is :mod:`.s3`.

``None`` fields of :class:`S3Config` come from the environment: the endpoint from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (custom endpoints are addressed path-style:
``/bucket/key``), the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (else us-east-1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..errors import ConfigError

__all__ = ["MiB", "ObjectInfo", "S3Config", "parse_s3_uri"]

MiB = 1 << 20


@dataclass(frozen=True)
class S3Config:
    """How to reach S3; ``None`` fields come from the environment (see the module docstring)."""

    endpoint: str | None = None
    region: str | None = None
    part_size: int = 8 * MiB
    throughput_target_gbps: float = 10.0
    #: attempts of ours after the CRT's own retries, for errors worth retrying
    retries: int = 3
    timeout: float = 300.0

    def resolved(self) -> S3Config:
        env = os.environ
        endpoint = self.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        region = self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        return replace(self, endpoint=endpoint or None, region=region or "us-east-1")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``. The key is everything after the bucket's
    slash: an S3 key may hold ``?`` and ``#``, which a URL parser would cut off as a query
    or a fragment."""
    bucket, _, key = uri[5:].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket:
        raise ConfigError("not an s3://bucket/key URI", uri=uri)
    return bucket, key.lstrip("/")
