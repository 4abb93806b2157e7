"""Fetch S3 shards ahead of the workers, in exactly the order the batches will need them.

The order is a pure function, so the trainer knows every future batch's sample indices. A
background thread walks the coming global steps (``lookahead`` beyond the last delivered one),
maps their samples to shards, and downloads each new shard into the disk shard cache
(``storage.blobs.local_shard``) through the CRT, several at a time. Workers then open the
cached copy instead of waiting for the download; a worker that needs a shard still being
downloaded waits for that download (``local_shard``'s lock) rather than starting another.
Local datasets and raw objects need none of this (raw objects are fetched per batch,
concurrently, by the worker itself, and Parquet reads only the column chunks it needs, by
range).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..dataset import Dataset
from ..storage.blobs import is_s3, local_shard
from ..storage.iostats import io_counters, io_delta

__all__ = ["ShardPrefetcher"]


class ShardPrefetcher:
    """Background download of the shards of coming steps (see module docstring)."""

    def __init__(
        self,
        dataset: Dataset,
        indices_of: Callable[[int], np.ndarray],
        first_step: int,
        n_steps: int,
        current_step: Callable[[], int],
        lookahead: int = 16,
        parallel: int = 4,
    ) -> None:
        self.dataset = dataset
        self.indices_of = indices_of
        self.first_step = first_step
        self.n_steps = n_steps
        self.current_step = current_step
        self.lookahead = lookahead
        self.parallel = parallel
        self.fetched = 0
        self.errors: list[BaseException] = []
        #: S3 requests and bytes of the downloads (summed over the pool's threads)
        self.io: dict[str, int] = {}
        self._io_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="m5stream-prefetch", daemon=True)

    @staticmethod
    def wanted(dataset: Dataset) -> bool:
        m = dataset.manifest
        # Parquet reads only the projected column chunks, by range, so it is not downloaded whole
        return m.format in ("tar", "jsonl", "csv") and is_s3(m.root)

    def start(self) -> ShardPrefetcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        pending: list[Future[str]] = []
        with ThreadPoolExecutor(self.parallel) as pool:
            try:
                self._walk(pool, pending)
            finally:
                if self._stop.is_set():
                    # the loader is done with these steps: downloads not yet begun are dropped
                    for f in pending:
                        f.cancel()
        # leaving the executor waited for the downloads already running; count every one that
        # completed (a shard a worker needed first is still counted once it is local)
        for f in pending:
            if not f.cancelled():
                self._account(f)

    def _walk(self, pool: ThreadPoolExecutor, pending: list[Future[str]]) -> None:
        m = self.dataset.manifest
        seen: set[int] = set()
        for step in range(self.first_step, self.n_steps):
            while step > self.current_step() + self.lookahead:
                if self._stop.wait(0.05):
                    return
            if self._stop.is_set():
                return
            shards, _ = self.dataset.locate_many(self.indices_of(step))
            for s in dict.fromkeys(shards.tolist()):  # first-need order, no repeats
                if s not in seen:
                    seen.add(s)
                    pending.append(pool.submit(self._fetch, m.uri(s), int(m.sizes[s]), m.stamps[s]))
            for f in [f for f in pending if f.done()]:
                pending.remove(f)
                self._account(f)

    def _fetch(self, uri: str, size: int, stamp: str) -> str:
        io0 = io_counters()  # per thread: this download's requests only
        try:
            return local_shard(uri, size, stamp, self.dataset.s3)
        finally:
            d = io_delta(io0)
            with self._io_lock:
                for k, v in d.items():
                    self.io[k] = self.io.get(k, 0) + v

    def _account(self, f: Future[str]) -> None:
        try:
            f.result()
            self.fetched += 1
        except Exception as exc:  # the worker that needs the shard reports it properly
            self.errors.append(exc)
