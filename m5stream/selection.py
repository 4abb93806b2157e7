"""Row filters: a dataset's rows where a pyarrow compute expression holds, selected once.

Contract: :func:`filtered` turns a manifest into one of the same shards whose samples are the
rows where ``expr`` holds, in file order (shard ``i``'s sample ``j`` is file row
``rows[i][j]``; a shard with none keeps its place with 0 samples, so per-shard metadata such
as a Glue partition's values stays aligned). Each shard's rows come from its format's
``select_rows`` (Parquet reads only the column chunks the filter references; CSV converts
only those columns; JSONL parses the objects), run for several shards at once, and are kept
in the shard-index cache keyed by the file's identity, the format options and the filter's
text: building the same filtered dataset again reads nothing. The filter's text is in the
manifest's options, so it is part of the fingerprint (with the selected counts).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._cache import cached_index
from .catalog.manifest import Manifest
from .errors import ConfigError, M5Error
from .formats import get_format
from .storage.iostats import add_io, io_counters, io_delta
from .storage.s3 import S3Config

__all__ = ["filtered"]

#: shards selected at once (pyarrow decodes and evaluates without the GIL)
_THREADS = 8


def _check_expression(expr: Any) -> str:
    try:
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ConfigError("filter= needs pyarrow") from None
    if not isinstance(expr, pc.Expression):
        raise ConfigError(
            "filter= takes a pyarrow.compute expression, e.g. "
            f"pc.field('locale') == 'ja_JP', not {type(expr).__name__}"
        )
    return str(expr)


def filtered(manifest: Manifest, expr: Any, s3: S3Config | None = None) -> Manifest:
    """``manifest`` restricted to the rows where ``expr`` holds (see module docstring)."""
    text = _check_expression(expr)
    if manifest.rows is not None:
        raise ConfigError("this manifest is filtered already: combine the filters with &")
    fmt = get_format(manifest.format)
    options = manifest.options
    fmt_key = repr(sorted((k, repr(v)) for k, v in options.items() if k != "partition_values"))

    def select(i: int) -> tuple[np.ndarray, dict[str, int]]:
        shard = manifest.shard(i, s3)
        before = io_counters()

        def build() -> dict[str, np.ndarray]:
            return {"rows": fmt.select_rows(shard, options, expr)}

        try:
            got = cached_index(
                "filter", f"{shard.uri}\x1f{fmt_key}\x1f{text}", shard.size, shard.stamp, build
            )["rows"]
        except M5Error as exc:
            exc.add_context(uri=shard.uri)
            raise
        if len(got) > int(manifest.counts[i]) or (len(got) and got.max() >= manifest.counts[i]):
            raise ConfigError(
                f"filter selected rows beyond the shard's {manifest.counts[i]} rows", uri=shard.uri
            )
        return got, io_delta(before)

    with ThreadPoolExecutor(min(_THREADS, max(1, manifest.num_shards))) as pool:
        done = list(pool.map(select, range(manifest.num_shards)))
    rows = [r for r, _ in done]
    for _, io in done:  # the pool's requests count as this thread's (it asked for them)
        add_io(io)
    return Manifest(
        source=manifest.source,
        format=manifest.format,
        root=manifest.root,
        keys=manifest.keys,
        sizes=manifest.sizes,
        stamps=manifest.stamps,
        counts=[len(r) for r in rows],
        options={**options, "filter": text},
        rows=rows,
    )
