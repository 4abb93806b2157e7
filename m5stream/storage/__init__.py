"""Storage layer: bytes by URI. Local files now; S3 (awscrt) plugs in behind the same calls."""

from .local import LocalFile, stat_local

__all__ = ["LocalFile", "stat_local"]
