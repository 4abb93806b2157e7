"""The Prometheus endpoint: scraped over loopback while a Loader runs, parsed with
``prometheus_client``'s parser, its counters equal to ``loader.stats``."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import m5stream as m5
from m5stream.records import recorder_of
from m5stream.stats import Stats
from tests.helpers import make_tar_dataset
from tests.records_common import flaky, payload, recorded_mixture_run


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _one(values: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    want = set(labels.items())
    hits = [v for k, v in values.items() if want <= set(k)]
    assert len(hits) == 1, (labels, values)
    return hits[0]


@pytest.mark.parametrize("nw", [0, 2])
def test_scrape_matches_loader_stats(tmp_path: Path, nw: int) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=3, per_shard=20)
    with m5.Loader(
        src,
        8,
        transform=flaky,
        num_workers=nw,
        on_error="skip",
        output="numpy",
        metrics_port=0,
        run_name="scraped",
    ) as lo:
        rec = recorder_of(lo)
        assert rec is not None and rec.url is None  # metrics only: nothing recorded
        assert rec.metrics_address is not None and rec.metrics_address[0] == "127.0.0.1"
        url = rec.metrics_url
        assert url is not None
        it = iter(lo)
        first = next(it)
        mid = _scrape(url)
        assert _one(mid["m5stream_batches_total"]) >= 1
        nbytes = payload(first) + sum(payload(b) for b in it)
        stats = lo.stats
        m = _scrape(url)
        run, rank, source = rec.run_id, "0", src
    base: dict[str, Any] = {"run": run, "rank": rank, "source": source}
    assert _one(m["m5stream_batches_total"], **base) == stats["batches"]
    assert _one(m["m5stream_samples_total"], **base) == stats["samples"] == 55
    assert _one(m["m5stream_skipped_samples_total"], **base) == stats["skipped"] == 5
    assert _one(m["m5stream_bytes_total"], **base) == nbytes
    assert _one(m["m5stream_worker_restarts_total"], **base) == stats["worker_restarts"] == 0
    assert _one(m["m5stream_s3_requests_total"], **base) == 0
    assert _one(m["m5stream_s3_retries_total"], **base) == 0
    for stage in Stats.STAGES:
        got = _one(m["m5stream_stage_seconds_total"], stage=stage, **base)
        assert got == stats["seconds"][stage]  # floats survive the text format exactly
    assert _one(m["m5stream_queue_depth"], **base) >= 0
    assert 0.0 <= _one(m["m5stream_input_bound_ratio"], **base) <= 1.0
    info = _one(m["m5stream_run_info"], run_name="scraped", workers=str(nw), **base)
    assert info == 1.0
    # the endpoint went away with the loader
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_two_loaders_share_one_port_and_mixture_sources(tmp_path: Path) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=1, per_shard=16)
    with m5.Loader(src, 4, output="numpy", metrics_port=0) as a:
        ra = recorder_of(a)
        assert ra is not None and ra.metrics_address is not None
        port = ra.metrics_address[1]
        with m5.Loader(src, 4, output="numpy", metrics_port=port, rank=1, world_size=2) as b:
            rb = recorder_of(b)
            assert rb is not None and rb.metrics_address == ra.metrics_address
            list(a), list(b)
            m = _scrape(f"http://127.0.0.1:{port}/metrics")
            assert _one(m["m5stream_samples_total"], run=ra.run_id, rank="0") == 16
            assert _one(m["m5stream_samples_total"], run=rb.run_id, rank="1") == 8
        m = _scrape(f"http://127.0.0.1:{port}/metrics")  # b left; a still served
        assert {dict(k)["run"] for k in m["m5stream_samples_total"]} == {ra.run_id}


def test_mixture_samples_per_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from m5stream.records import recorder as recorder_mod

    seen: dict[str, float] = {}
    real_close = recorder_mod.Recorder.close

    def close(self: Any, timeout: float | None = None) -> None:
        if self.metrics_url:
            m = _scrape(self.metrics_url)
            seen.update({dict(k)["source"]: v for k, v in m["m5stream_samples_total"].items()})
        real_close(self, timeout)

    monkeypatch.setattr(recorder_mod.Recorder, "close", close)
    real_init = recorder_mod.Recorder.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        kw["metrics"] = ("127.0.0.1", 0)
        real_init(self, *args, **kw)

    monkeypatch.setattr(recorder_mod.Recorder, "__init__", init)
    recorded_mixture_run(f"sqlite:///{tmp_path / 'r.db'}")
    assert seen == {"en": 128.0, "ja": 77.0, "img": 51.0}


def test_a_taken_port_costs_the_metrics_not_the_loader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import socket

    src = make_tar_dataset(tmp_path / "d", shards=1, per_shard=8)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="m5stream.records"):
            with m5.Loader(src, 4, output="numpy", metrics_port=port) as lo:
                assert sum(len(b["__index__"]) for b in lo) == 8
                rec = recorder_of(lo)
                assert rec is not None and rec.metrics_url is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0]


def test_queue_depth_of_each_executor(tmp_path: Path) -> None:
    """The gauge reads the executor: steps planned ahead (threads), tasks in flight
    (processes; without inline_start, whose first batches are made in the trainer with
    nothing in flight), nothing ahead (inline)."""
    src = make_tar_dataset(tmp_path / "d", shards=4, per_shard=32)
    for kind, nw in (("inline", 0), ("threads", 2), ("processes", 2)):
        extra = {"inline_start": False} if kind == "processes" else {}
        with m5.Loader(
            src, 4, num_workers=nw, executor=kind, output="numpy", metrics_port=0, **extra
        ) as lo:
            rec = recorder_of(lo)
            assert rec is not None
            it = iter(lo)
            next(it)
            depth = rec.queue_depth()
            assert (depth == 0) if kind == "inline" else (depth >= 1), (kind, depth)
            scraped = _one(_scrape(rec.metrics_url or "")["m5stream_queue_depth"])
            assert scraped == 0 if kind == "inline" else scraped >= 0
            it.close()  # type: ignore[attr-defined]
