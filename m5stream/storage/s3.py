"""S3 through the AWS CRT (``awscrt.s3.S3Client``): ranged GETs, HEAD, listing, uploads.

One client per process, created on first use. A forked child makes its own: the CRT runs
native threads that a fork does not copy, so the parent's clients are left unused there, and
never destroyed (an at-fork reset registered with :mod:`m5stream._fork`; see
:func:`_forget_clients`). Workers are started with forkserver anyway, so each makes its own.

Configuration (:class:`S3Config`, or the environment): endpoint from ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` (custom endpoints are addressed path-style: ``/bucket/key``), region from
``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (else us-east-1), credentials from the CRT's default
chain (environment, shared profile, container and instance metadata).

Errors: 404 becomes :class:`~m5stream.errors.NotFound`, 401/403 :class:`PermissionDenied`,
anything else after the CRT's own retries (5xx, SlowDown, dropped connections - exponential
backoff with jitter) plus ``S3Config.retries`` more attempts of ours an :class:`M5Error`; each
names bucket, key and byte range and never a credential.
"""

from __future__ import annotations

import ctypes
import io
import os
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast
from urllib.parse import quote, urlparse

from .._fork import on_fork_in_child
from ..errors import (
    ConfigError,
    CorruptData,
    M5Error,
    NotFound,
    PermissionDenied,
    StateMismatch,
)
from .iostats import count_bytes, count_request, count_retry
from .s3config import ObjectInfo, S3Config, parse_s3_uri
from .s3response import RETRYABLE_CODES, Response, error_code

__all__ = [
    "ObjectInfo",
    "S3Client",
    "S3Config",
    "client",
    "parse_s3_uri",
]


class S3Client:
    """A thin, blocking-call facade over ``awscrt.s3.S3Client`` (see module docstring)."""

    def __init__(self, config: S3Config | None = None) -> None:
        # awscrt (the [s3] extra; native threads) is loaded by the first client, so local
        # sources and an import of m5stream need none of it
        from awscrt.auth import AwsCredentialsProvider
        from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
        from awscrt.s3 import S3Client as CrtS3Client
        from awscrt.s3 import S3RequestTlsMode

        self.config = (config or S3Config()).resolved()
        elg = EventLoopGroup()
        bootstrap = ClientBootstrap(elg, DefaultHostResolver(elg))
        endpoint = self.config.endpoint
        if endpoint:
            u = urlparse(endpoint)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise ConfigError(f"S3 endpoint must be http(s)://host[:port], not {endpoint!r}")
            self._host: str | None = u.netloc
            self._prefix = u.path.rstrip("/")
            tls = S3RequestTlsMode.DISABLED if u.scheme == "http" else S3RequestTlsMode.ENABLED
        else:
            self._host = None
            self._prefix = ""
            tls = S3RequestTlsMode.ENABLED
        self._crt = CrtS3Client(
            bootstrap=bootstrap,
            region=self.config.region,
            credential_provider=AwsCredentialsProvider.new_default_chain(bootstrap),
            tls_mode=tls,
            part_size=self.config.part_size,
            throughput_target_gbps=self.config.throughput_target_gbps,
        )

    # -- addressing
    def _target(self, bucket: str, key: str = "", query: str = "") -> tuple[str, str]:
        """(host header, path) - path-style for custom endpoints, virtual-hosted for AWS."""
        q = f"?{query}" if query else ""
        if self._host is not None:
            path = f"{self._prefix}/{bucket}" + (f"/{quote(key, safe='/~')}" if key else "/")
            return self._host, path + q
        host = f"{bucket}.s3.{self.config.region}.amazonaws.com"
        return host, "/" + quote(key, safe="/~") + q

    # -- the one place requests are made
    def _request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        recv_filepath: str | None = None,
        send_filepath: str | None = None,
        into: bytearray | None = None,
        into_base: int = 0,
        operation: str,
        byte_range: str | None = None,
        received: list[int] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Run one request to completion; returns (status, headers, body).

        With ``into``, body bytes go straight into that buffer: the CRT reports each chunk's
        offset in the object, so ``into_base`` (the range start) is subtracted.
        """
        from awscrt.http import HttpHeaders, HttpRequest  # awscrt: see __init__
        from awscrt.s3 import S3RequestType

        host, path = self._target(bucket, key, query)
        uri = f"s3://{bucket}/{key}"
        kind = {"GetObject": S3RequestType.GET_OBJECT, "PutObject": S3RequestType.PUT_OBJECT}.get(
            operation, S3RequestType.DEFAULT
        )
        attempt = 0
        while True:
            hdrs = HttpHeaders([("host", host), *(headers or [])])
            if body is not None:
                hdrs.add("content-length", str(len(body)))
            elif send_filepath is not None:
                hdrs.add("content-length", str(os.path.getsize(send_filepath)))
            req = HttpRequest(method, path, hdrs, io.BytesIO(body) if body is not None else None)
            resp = Response(into, into_base)
            kwargs: dict[str, Any] = {"type": kind, "request": req, "on_headers": resp.on_headers}
            if kind == S3RequestType.DEFAULT:
                kwargs["operation_name"] = operation
            if recv_filepath is not None:
                kwargs["recv_filepath"] = recv_filepath
            else:
                kwargs["on_body"] = resp.on_body
            if send_filepath is not None:
                kwargs["send_filepath"] = send_filepath
            try:
                self._crt.make_request(**kwargs).finished_future.result(self.config.timeout)
            except Exception as exc:
                err = self._error(exc, uri, byte_range, operation)
                # a definite answer (404, 403, 412, ...) is final; others are tried again
                if err is not None or attempt >= self.config.retries:
                    raise (
                        err
                        or M5Error(f"S3 {operation} failed: {exc}", uri=uri, byte_range=byte_range)
                    ) from None
                attempt += 1
                count_retry()
                time.sleep(min(5.0, 0.1 * 2**attempt) * (0.5 + random.random()))
                continue
            finally:
                count_request(operation)
            if received is not None:
                received[0] = resp.received
            if resp.received:
                count_bytes(resp.received)
            return resp.status, resp.headers, resp.body()

    @staticmethod
    def _error(exc: Exception, uri: str, byte_range: str | None, operation: str) -> M5Error | None:
        """The m5stream error for a failed request; ``None`` when it is worth retrying."""
        status = getattr(exc, "status_code", None)
        code = error_code(getattr(exc, "body", None))
        what = f"S3 {operation} failed" + (
            f": {status} {code}".rstrip()
            if status
            else f": {getattr(exc, 'name', type(exc).__name__)}"
        )
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
            return NotFound(what, uri=uri, byte_range=byte_range)
        if status == 412:
            return StateMismatch(
                "the object changed since the manifest was made (ETag differs)",
                uri=uri,
                byte_range=byte_range,
            )
        if status in (401, 403):
            return PermissionDenied(what, uri=uri, byte_range=byte_range)
        if status is None or status >= 500 or status == 429 or code in RETRYABLE_CODES:
            return None  # connection-level failures and server errors: try again
        return M5Error(what, uri=uri, byte_range=byte_range)

    # -- operations
    def get(
        self,
        bucket: str,
        key: str,
        offset: int = 0,
        length: int | None = None,
        etag: str | None = None,
    ) -> bytes:
        """The object's bytes, or ``length`` bytes from ``offset``.

        With ``etag`` the read is conditional (``If-Match``): an object changed since the
        manifest was made is an error, never mixed data.
        """
        headers = [("if-match", f'"{etag}"')] if etag else []
        byte_range = None
        into = None
        if length is not None:
            if length == 0:
                return b""
            byte_range = f"{offset}-{offset + length - 1}"
            headers.append(("range", f"bytes={byte_range}"))
            into = bytearray(length)
        elif offset:
            byte_range = f"{offset}-"
            headers.append(("range", f"bytes={byte_range}"))
        got = [0]
        _, _, data = self._request(
            "GET",
            bucket,
            key,
            headers=headers,
            into=into,
            into_base=offset,
            operation="GetObject",
            byte_range=byte_range,
            received=got,
        )
        if into is not None:
            if got[0] != len(into):
                raise CorruptData(
                    f"short read: got {got[0]} of {len(into)} bytes",
                    uri=f"s3://{bucket}/{key}",
                    byte_range=byte_range,
                )
            return bytes(into)
        return data

    def get_many(
        self, items: Sequence[tuple[str, str, str | None] | tuple[str, str, str | None, int, int]]
    ) -> list[bytes | M5Error]:
        """Objects ``(bucket, key, etag)``, or byte ranges ``(bucket, key, etag, offset, length)``,
        all requests in flight at once (the CRT schedules them; no Python thread per request).
        A failed one is retried alone through :meth:`get`; one that still fails is returned as
        its error, in its place."""
        return cast("list[bytes | M5Error]", self.start_many(items)())

    def start_many(
        self, items: Sequence[tuple[Any, ...]]
    ) -> Callable[[], list[bytes | memoryview | M5Error]]:
        """:meth:`get_many` in two halves: the requests start now, and the returned function
        waits for them (call it once, from any thread). Requests are counted where they
        start, bytes where they are collected. A range item may carry a sixth element, a
        writable buffer of ``length`` bytes: the body is written straight into it (no copy)
        and that buffer is the item's result."""
        from awscrt.http import HttpHeaders, HttpRequest  # awscrt: see __init__
        from awscrt.s3 import S3RequestType

        started = []
        for item in items:
            bucket, key, etag = item[:3]
            host, path = self._target(bucket, key)
            hdrs = HttpHeaders([("host", host)])
            if etag:
                hdrs.add("if-match", f'"{etag}"')
            into, base = None, 0
            if len(item) >= 5:
                base, length = item[3], item[4]
                hdrs.add("range", f"bytes={base}-{base + length - 1}")
                into = item[5] if len(item) == 6 else bytearray(length)
            resp = Response(into, base)
            req = self._crt.make_request(
                type=S3RequestType.GET_OBJECT,
                request=HttpRequest("GET", path, hdrs),
                on_headers=resp.on_headers,
                on_body=resp.on_body,
            )
            count_request("GetObject")
            started.append((req, resp))
        return lambda: self._collect(items, started)

    def _collect(
        self, items: Sequence[tuple[Any, ...]], started: list[Any]
    ) -> list[bytes | memoryview | M5Error]:
        out: list[bytes | memoryview | M5Error] = []
        for item, (req, resp) in zip(items, started):
            try:
                req.finished_future.result(self.config.timeout)
                count_bytes(resp.received)
                if resp.into is not None:
                    if resp.received != len(resp.into):
                        raise ValueError("short read")
                    out.append(resp.into if len(item) == 6 else bytes(resp.into))
                else:
                    out.append(resp.body())
            except Exception as exc:
                bucket, key, etag = item[:3]
                rng = f"{item[3]}-{item[3] + item[4] - 1}" if len(item) >= 5 else None
                final = self._error(exc, f"s3://{bucket}/{key}", rng, "GetObject")
                if final is not None:  # a definite answer: asking again changes nothing
                    out.append(final)
                    continue
                try:  # the blocking path, with its retries
                    if len(item) == 6:
                        item[5][:] = self.get(bucket, key, item[3], item[4], etag=etag)
                        out.append(item[5])
                    elif len(item) == 5:
                        out.append(self.get(bucket, key, item[3], item[4], etag=etag))
                    else:
                        out.append(self.get(bucket, key, etag=etag))
                except M5Error as err:
                    out.append(err)
        return out

    def download(self, bucket: str, key: str, path: str, etag: str | None = None) -> None:
        """Write the object to ``path`` (the CRT writes the parts itself, no Python copy);
        conditional on ``etag`` like :meth:`get`."""
        headers = [("if-match", f'"{etag}"')] if etag else []
        self._request(
            "GET", bucket, key, headers=headers, recv_filepath=path, operation="GetObject"
        )
        count_bytes(os.path.getsize(path))

    def head(self, bucket: str, key: str) -> ObjectInfo:
        _, headers, _ = self._request("HEAD", bucket, key, operation="HeadObject")
        return ObjectInfo(
            key, int(headers.get("content-length", 0)), headers.get("etag", "").strip('"')
        )

    def put(
        self, bucket: str, key: str, data: bytes | None = None, *, path: str | None = None
    ) -> None:
        """Upload ``data`` or the file at ``path`` (multipart above the part size)."""
        self._request("PUT", bucket, key, body=data, send_filepath=path, operation="PutObject")

    def create_bucket(self, bucket: str) -> None:
        self._request("PUT", bucket, operation="CreateBucket")

    def list(
        self, bucket: str, prefix: str = "", delimiter: str | None = None
    ) -> Iterator[ObjectInfo | str]:
        """ListObjectsV2, all pages: ``ObjectInfo`` per object, and ``str`` common prefixes
        when ``delimiter`` is given."""
        token = None
        while True:
            q = [("list-type", "2"), ("prefix", prefix)]
            if delimiter:
                q.append(("delimiter", delimiter))
            if token:
                q.append(("continuation-token", token))
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(q))
            try:
                _, _, body = self._request("GET", bucket, query=query, operation="ListObjectsV2")
            except M5Error as exc:  # name the prefix listed, not just the bucket
                exc.context["uri"] = exc.uri = f"s3://{bucket}/{prefix}"
                raise
            root = ET.fromstring(body)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for c in root.findall(f"{ns}Contents"):
                yield ObjectInfo(
                    c.findtext(f"{ns}Key") or "",
                    int(c.findtext(f"{ns}Size") or 0),
                    (c.findtext(f"{ns}ETag") or "").strip('"'),
                )
            for p in root.findall(f"{ns}CommonPrefixes"):
                yield p.findtext(f"{ns}Prefix") or ""
            if (root.findtext(f"{ns}IsTruncated") or "false").lower() != "true":
                return
            token = root.findtext(f"{ns}NextContinuationToken")


_CLIENTS: dict[S3Config, S3Client] = {}
_LOCK = threading.Lock()


def client(config: S3Config | None = None) -> S3Client:
    """This process's client for ``config`` (default: from the environment), made once."""
    cfg = (config or S3Config()).resolved()
    with _LOCK:
        c = _CLIENTS.get(cfg)
        if c is None:
            c = _CLIENTS[cfg] = S3Client(cfg)
        return c


@on_fork_in_child
def _forget_clients() -> None:
    """In a forked child: the parent's clients are unusable (the CRT's event-loop threads did
    not survive the fork) and are never destroyed either - their native teardown waits on
    those threads and crashes the child - so each keeps one reference that is never given
    back, and the child makes its own clients."""
    for c in _CLIENTS.values():
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(c))
    _CLIENTS.clear()
