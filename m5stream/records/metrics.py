"""Live metrics of running loaders: a Prometheus text endpoint through ``prometheus-client``.

``Loader(metrics_port=P)`` (or ``$M5STREAM_METRICS_PORT``) serves ``/metrics`` on
``127.0.0.1:P`` (``"host:port"`` binds another address; ``0`` takes a free port, see
``Recorder.metrics_url``). Loaders of one process that name the same address share one
server; it stops when the last of them closes. Every value is read from the recorder's
counters and the loader's :class:`~m5stream.stats.Stats` when scraped: serving metrics adds
nothing to a training step.

Families (all labelled ``run``, ``rank`` and ``source``; ``source`` is a mixture's source name
on ``m5stream_samples_total`` and the dataset's source elsewhere):

``m5stream_batches_total``, ``m5stream_samples_total``, ``m5stream_bytes_total`` (batch
payload), ``m5stream_stage_seconds_total{stage}`` (read, transform, decode, assemble, wait,
deliver; worker stages summed over workers), ``m5stream_queue_depth`` (batches dispatched
ahead of the trainer and not yet delivered), ``m5stream_input_bound_ratio`` (the trainer's
wait share over the last recording interval), ``m5stream_worker_restarts_total``,
``m5stream_skipped_samples_total``, ``m5stream_s3_requests_total``,
``m5stream_s3_retries_total``, ``m5stream_s3_bytes_total``, and ``m5stream_run_info`` (1,
with ``run_name``, ``executor``, ``workers``, ``batch_size``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..stats import Stats

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["MetricsServer", "serve"]

log = logging.getLogger("m5stream.records")
_LABELS = ["run", "rank", "source"]


class _RecorderCollector(Collector):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def collect(self) -> Iterator[Metric]:
        rec = self.rec
        snap = rec.snapshot()
        base = [rec.run_id, str(rec._start.get("rank", 0)), rec.source_label]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=_LABELS)
            m.add_metric(base, value)
            return m

        yield counter("m5stream_batches", "Batches delivered to the trainer", snap.batches)
        samples = CounterMetricFamily(
            "m5stream_samples", "Samples delivered to the trainer", labels=_LABELS
        )
        if snap.sources:
            for name, n in sorted(snap.sources.items()):
                samples.add_metric([base[0], base[1], name], n)
        else:
            samples.add_metric(base, snap.samples)
        yield samples
        yield counter("m5stream_bytes", "Payload bytes of the delivered batches", snap.bytes)
        stage = CounterMetricFamily(
            "m5stream_stage_seconds",
            "Seconds per stage (worker stages summed over workers)",
            labels=[*_LABELS, "stage"],
        )
        for s in Stats.STAGES:
            stage.add_metric([*base, s], snap.seconds.get(s, 0.0))
        yield stage
        depth = GaugeMetricFamily(
            "m5stream_queue_depth",
            "Batches dispatched ahead of the trainer and not yet delivered",
            labels=_LABELS,
        )
        depth.add_metric(base, rec.queue_depth())
        yield depth
        bound = GaugeMetricFamily(
            "m5stream_input_bound_ratio",
            "Share of the last interval the trainer waited for data",
            labels=_LABELS,
        )
        bound.add_metric(base, rec.last_input_bound)
        yield bound
        yield counter(
            "m5stream_worker_restarts", "Dead worker processes replaced", snap.worker_restarts
        )
        yield counter("m5stream_skipped_samples", "Samples skipped as bad", snap.skipped)
        yield counter("m5stream_s3_requests", "S3 requests sent", snap.s3_requests)
        yield counter("m5stream_s3_retries", "S3 requests retried by m5stream", snap.s3_retries)
        yield counter("m5stream_s3_bytes", "S3 response body bytes", snap.s3_bytes)
        info = GaugeMetricFamily(
            "m5stream_run_info",
            "The run (value 1)",
            labels=[*_LABELS, "run_name", "executor", "workers", "batch_size"],
        )
        st = rec._start
        info.add_metric(
            [
                *base,
                st.get("run_name") or "",
                str(st.get("executor") or ""),
                str(st.get("num_workers") or 0),
                str(st.get("batch_size") or 0),
            ],
            1,
        )
        yield info


class _Server:
    """One HTTP endpoint and the registry of the recorders it serves."""

    def __init__(self, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.httpd, self.thread = start_http_server(port, addr=host, registry=self.registry)
        self.host = host
        self.port = int(self.httpd.server_port)
        self.users = 0

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


_SERVERS: dict[tuple[str, int], _Server] = {}
_LOCK = threading.Lock()


class MetricsServer:
    """One recorder's registration on a shared endpoint; :meth:`close` leaves it."""

    def __init__(self, server: _Server, collector: _RecorderCollector, key: tuple[str, int]):
        self._server = server
        self._collector = collector
        self._key = key
        self.address = (server.host, server.port)

    def close(self) -> None:
        with _LOCK:
            s = self._server
            s.registry.unregister(self._collector)
            s.users -= 1
            if s.users == 0:
                _SERVERS.pop(self._key, None)
                s.stop()


def serve(rec: Recorder, host: str, port: int) -> MetricsServer:
    """Serve ``rec``'s metrics on ``host:port`` (shared with other recorders of this process
    on the same address; port 0: a new server on a free port)."""
    with _LOCK:
        key = (host, port)
        server = _SERVERS.get(key) if port else None
        if server is None:
            server = _Server(host, port)
            key = (host, server.port)
            _SERVERS[key] = server
            log.info("m5stream metrics on http://%s:%d/metrics", host, server.port)
        collector = _RecorderCollector(rec)
        server.registry.register(collector)
        server.users += 1
        return MetricsServer(server, collector, key)
