"""One S3 response as the CRT delivers it (:class:`Response`: status, headers, body chunks
from the CRT's threads) and what an error body says (:func:`error_code`)."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["RETRYABLE_CODES", "Response", "error_code"]


def error_code(body: bytes | None) -> str:
    if not body:
        return ""
    try:
        code = ET.fromstring(body).find("Code")
        return code.text or "" if code is not None else ""
    except ET.ParseError:
        return ""


RETRYABLE_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
}


class Response:
    """Collects one response; the CRT calls these from its own threads."""

    def __init__(self, into: bytearray | memoryview | None, into_base: int) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[tuple[int, bytes]] = []
        self.received = 0
        self.into = into
        self.into_base = into_base
        self.lock = threading.Lock()

    def on_headers(self, status_code: int, headers: list[tuple[str, str]], **kw: Any) -> None:
        self.status = status_code
        self.headers.update({k.lower(): v for k, v in headers})

    def on_body(self, chunk: Any, offset: int, **kw: Any) -> None:
        n = len(chunk)
        if self.into is not None:  # straight into the caller's buffer, at its offset
            pos = offset - self.into_base
            self.into[pos : pos + n] = chunk
            with self.lock:
                self.received += n
        else:
            with self.lock:
                self.chunks.append((offset, bytes(chunk)))
                self.received += n

    def body(self) -> bytes:
        return b"".join(c for _, c in sorted(self.chunks))
