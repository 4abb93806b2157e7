"""A loopback HTTP proxy that breaks a fixed share of S3 requests, for fault-injection tests.

Each client connection carries one request (the proxy closes it after the response, which
HTTP/1.1 clients handle by reconnecting). Request number ``k`` (counting from 1):

* ``k % every == every // 3``: answered ``503 SlowDown`` (S3's throttling reply);
* ``k % every == 2 * every // 3``: the connection is reset (RST) without an answer;
* otherwise: forwarded to the upstream server, and its response relayed back.

Only 127.0.0.1 is ever used. Counts of what happened are kept in ``stats``.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter

SLOWDOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 93\r\n"
    b"Connection: close\r\n\r\n"
    b'<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>slow</Message></Error>'
    b"\n\n\n\n\n\n\n\n\n\n\n"
)


def _read_head(sock: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    return head


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)) or 1)
        if not chunk:
            break
        buf += chunk
    data = bytes(buf[:n])
    del buf[:n]
    return data


class FaultProxy:
    def __init__(self, upstream_port: int, every: int = 10) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.every = every
        self.stats: Counter[str] = Counter()
        self._count = 0
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(128)
        self.port = self._srv.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self._srv.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            head = _read_head(conn, buf)
            if head is None:
                return
            body = _read_exact(conn, buf, _content_length(head) or 0)
            with self._lock:
                self._count += 1
                k = self._count
            slot = k % self.every
            if slot == self.every // 3:
                self.stats["slowdown"] += 1
                conn.sendall(SLOWDOWN)
                return
            if slot == 2 * self.every // 3:
                self.stats["reset"] += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            self.stats["forwarded"] += 1
            with socket.create_connection(self.upstream, timeout=60) as up:
                up.sendall(head + body)
                ubuf = bytearray()
                rhead = _read_head(up, ubuf)
                if rhead is None:
                    return
                n = _content_length(rhead)
                method = head.split(b" ", 1)[0]
                if method == b"HEAD" or n is None:
                    n = 0 if method == b"HEAD" or (n is None and b" 204 " in rhead[:16]) else n
                conn.sendall(rhead)
                if n:
                    while n > 0:
                        chunk = bytes(ubuf[:n]) if ubuf else up.recv(min(1 << 20, n))
                        if ubuf:
                            del ubuf[: len(chunk)]
                        if not chunk:
                            break
                        conn.sendall(chunk)
                        n -= len(chunk)
        except OSError:
            pass
        finally:
            conn.close()
