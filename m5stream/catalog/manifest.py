"""The manifest: the ordered shards of a dataset, and its fingerprint.

A manifest is columnar (one entry per shard in parallel lists/arrays) so that a million raw
objects cost a few arrays, not a million Python objects. Shard ``i`` holds the global sample
indices ``[offsets[i], offsets[i + 1])``. The fingerprint is a SHA-256 over the format, the
format options and every shard's (relative key, size, stamp, sample count): it changes when any
byte-level identity of the data changes and does not depend on where the data is mounted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..storage.s3 import S3Config

__all__ = ["Manifest", "ShardInfo"]

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ShardInfo:
    """One shard, as the formats layer sees it (with the S3 settings to reach it, if any)."""

    index: int
    uri: str
    key: str
    size: int
    stamp: str
    num_samples: int
    first_sample: int
    s3: S3Config | None = None


class Manifest:
    """Ordered shards of one dataset (see module docstring)."""

    def __init__(
        self,
        *,
        source: str,
        format: str,
        root: str,
        keys: Sequence[str],
        sizes: Sequence[int] | np.ndarray,
        stamps: Sequence[str],
        counts: Sequence[int] | np.ndarray,
        options: dict[str, Any] | None = None,
        rows: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.source = source
        self.format = format
        self.root = root
        self.keys = list(keys)
        self.sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
        self.stamps = list(stamps)
        self.counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        self.options = dict(options or {})
        n = len(self.keys)
        if not (len(self.sizes) == len(self.stamps) == len(self.counts) == n):
            raise ValueError("manifest columns have different lengths")
        #: a row filter's selection: shard ``i``'s sample ``j`` is row ``rows[i][j]`` of the
        #: file (``None``: every row, in order); ``counts`` are then the selected rows
        self.rows = None if rows is None else [np.asarray(r, dtype=np.int64) for r in rows]
        if self.rows is not None and [len(r) for r in self.rows] != self.counts.tolist():
            raise ValueError("manifest row selection does not match its counts")
        self.offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(self.counts, out=self.offsets[1:])
        self._fingerprint: str | None = None
        self._snapshot: dict[str, Any] | None = None

    @property
    def num_shards(self) -> int:
        return len(self.keys)

    @property
    def num_samples(self) -> int:
        return int(self.offsets[-1])

    def __len__(self) -> int:
        return self.num_shards

    def uri(self, shard: int) -> str:
        root = self.root
        if not root:
            return self.keys[shard]
        return root.rstrip("/") + "/" + self.keys[shard]

    def shard(self, i: int, s3: S3Config | None = None) -> ShardInfo:
        return ShardInfo(
            index=i,
            uri=self.uri(i),
            key=self.keys[i],
            size=int(self.sizes[i]),
            stamp=self.stamps[i],
            num_samples=int(self.counts[i]),
            first_sample=int(self.offsets[i]),
            s3=s3,
        )

    def locate(self, index: int) -> tuple[int, int]:
        """Global sample index -> (shard number, index within the shard)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample index {index} out of range [0, {self.num_samples})")
        shard = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return shard, index - int(self.offsets[shard])

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"m5manifest/{MANIFEST_VERSION}\n{self.format}\n".encode())
            h.update(json.dumps(self.options, sort_keys=True, default=str).encode())
            for key, size, stamp, count in zip(
                self.keys, self.sizes.tolist(), self.stamps, self.counts.tolist()
            ):
                h.update(f"\n{key}\x1f{size}\x1f{stamp}\x1f{count}".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def snapshot(self) -> dict[str, Any]:
        """What a saved loader state records about the data, so that a mismatch on resume can
        say what changed: the source, the Glue table version and filter where there is one,
        and the size of the data (computed once: the manifest does not change)."""
        if self._snapshot is not None:
            return dict(self._snapshot)
        snap: dict[str, Any] = {
            "source": self.source,
            "num_shards": self.num_shards,
            "num_samples": self.num_samples,
            "total_bytes": int(self.sizes.sum()),
        }
        if self.options.get("filter") is not None:
            snap["filter"] = self.options["filter"]
        glue = self.options.get("glue")
        if glue:
            snap["table_version"] = glue.get("version_id")
            snap["where"] = glue.get("where")
        self._snapshot = snap
        return dict(snap)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": MANIFEST_VERSION,
                "source": self.source,
                "format": self.format,
                "root": self.root,
                "options": self.options,
                "keys": self.keys,
                "sizes": self.sizes.tolist(),
                "stamps": self.stamps,
                "counts": self.counts.tolist(),
                "fingerprint": self.fingerprint,
                **(
                    {
                        "rows": [
                            base64.b64encode(r.astype("<i8").tobytes()).decode() for r in self.rows
                        ]
                    }
                    if self.rows is not None
                    else {}
                ),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        if d.get("version") != MANIFEST_VERSION:
            raise ValueError(f"unsupported manifest version {d.get('version')!r}")
        m = cls(
            source=d["source"],
            format=d["format"],
            root=d["root"],
            keys=d["keys"],
            sizes=d["sizes"],
            stamps=d["stamps"],
            counts=d["counts"],
            options=d.get("options"),
            rows=None
            if d.get("rows") is None
            else [np.frombuffer(base64.b64decode(r), dtype="<i8") for r in d["rows"]],
        )
        if m.fingerprint != d["fingerprint"]:
            raise ValueError("manifest fingerprint does not match its contents")
        return m

    def __repr__(self) -> str:
        return (
            f"Manifest(source={self.source!r}, format={self.format!r}, "
            f"shards={self.num_shards}, samples={self.num_samples}, "
            f"fingerprint={self.fingerprint[:12]})"
        )
