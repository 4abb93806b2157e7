"""Which database a run is recorded in: the ``record=`` option and ``$M5STREAM_RECORD`` as a
SQLAlchemy URL, and that URL as it may be shown (never with its password).

``True`` (or ``1``) means the default, ``sqlite:///<cache>/runs.db`` (the m5stream cache,
``$M5STREAM_CACHE``); a path without a scheme is a SQLite file; ``postgresql://`` and
``postgres://`` go through psycopg 3 (``postgresql+psycopg://``). No I/O beyond making the
cache directory, and SQLAlchemy is not imported.
"""

from __future__ import annotations

import os
import re

from .._cache import cache_dir
from ..errors import ConfigError

__all__ = ["DEFAULT_FILE", "default_url", "redact", "resolve_url"]

DEFAULT_FILE = "runs.db"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def default_url() -> str:
    """``sqlite:///<cache>/runs.db``."""
    return f"sqlite:///{cache_dir() / DEFAULT_FILE}"


def resolve_url(record: str | bool | None = None, *, env: bool = True) -> str | None:
    """The SQLAlchemy URL for ``record`` (``None``: ``$M5STREAM_RECORD`` when ``env``);
    ``None`` when nothing is to be recorded."""
    if record is None and env:
        record = os.environ.get("M5STREAM_RECORD") or None
    if record is None or record is False:
        return None
    if record is True:
        return default_url()
    text = str(record).strip()
    if text.lower() in ("", "0", "false", "no", "off"):
        return None
    if text.lower() in ("1", "true", "yes", "on"):
        return default_url()
    m = _SCHEME.match(text)
    if m is None:
        return f"sqlite:///{os.path.abspath(os.path.expanduser(text))}"
    scheme = m.group(1).lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + text[m.end() :]
    if scheme == "postgresql+psycopg" or scheme.startswith("sqlite"):
        return text
    raise ConfigError(
        f"record: unsupported database URL scheme {scheme!r} "
        "(sqlite:///PATH or postgresql://USER@HOST:PORT/DB)"
    )


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and error messages)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
