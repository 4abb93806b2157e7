"""Catalog layer: a source string becomes an ordered, fingerprinted manifest."""

from .manifest import Manifest, ShardInfo
from .resolve import expand_braces, list_local

__all__ = ["Manifest", "ShardInfo", "expand_braces", "list_local"]
