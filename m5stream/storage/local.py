"""Local files: ``stat`` for the manifest and positional reads for the formats.

A :class:`LocalFile` opens its descriptor lazily and never shares it across ``fork``: it is
dropped when pickled, so each worker process opens its own. Reads use ``os.pread`` (no shared
file position, safe from several threads). OS errors become m5stream errors naming the path and
byte range.
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any

from ..errors import CorruptData, M5Error, NotFound, PermissionDenied

__all__ = ["LocalFile", "stat_local", "os_error"]


def os_error(exc: OSError, uri: str, byte_range: str | None = None) -> M5Error:
    """The m5stream error for an ``OSError`` raised while touching ``uri``."""
    if exc.errno == errno.ENOENT:
        return NotFound("no such file", uri=uri, byte_range=byte_range)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied("permission denied", uri=uri, byte_range=byte_range)
    return M5Error(f"I/O error: {exc.strerror or exc}", uri=uri, byte_range=byte_range)


def stat_local(path: str) -> tuple[int, str]:
    """``(size, stamp)`` of a file; the stamp is the modification time in nanoseconds."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise os_error(exc, path) from exc
    return st.st_size, str(st.st_mtime_ns)


class LocalFile:
    """Positional reader over one local file (see module docstring)."""

    def __init__(self, path: str, expected_size: int | None = None) -> None:
        self.path = path
        self.expected_size = expected_size
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise os_error(exc, self.path) from exc
        return self._fd

    def read(self, offset: int, length: int) -> bytes:
        fd = self._open()
        rng = f"{offset}-{offset + length - 1}" if length else f"{offset}-"
        try:
            data = os.pread(fd, length, offset)
            while len(data) < length:
                more = os.pread(fd, length - len(data), offset + len(data))
                if not more:
                    break
                data += more
        except OSError as exc:
            raise os_error(exc, self.path, rng) from exc
        if len(data) != length:
            raise CorruptData(
                f"short read: got {len(data)} of {length} bytes (file truncated?)",
                uri=self.path,
                byte_range=rng,
            )
        return data

    def read_all(self) -> bytes:
        fd = self._open()
        size = os.fstat(fd).st_size
        return self.read(0, size)

    def map(self) -> mmap.mmap | bytes:
        """Read-only map of the whole file (``b""`` for an empty file)."""
        fd = self._open()
        size = os.fstat(fd).st_size
        if size == 0:
            return b""
        return mmap.mmap(fd, size, prot=mmap.PROT_READ)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "expected_size": self.expected_size, "_fd": None}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
