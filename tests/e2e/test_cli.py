"""The m5stream command line, run as a user runs it (a subprocess, no terminal)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_tar_dataset

ROOT = Path(__file__).resolve().parents[2]
STAGES = [
    "listing",
    "first_batch",
    "fetch",
    "decode",
    "transform",
    "collate",
    "handoff",
    "trainer_wait",
]
TOP = {
    "schema",
    "m5stream_version",
    "created",
    "interrupted",
    "environment",
    "source",
    "config",
    "result",
    "stages",
    "workers",
    "memory",
    "s3",
    "bottleneck",
    "startup",
    "timeline",
    "compare",
}
STARTUP = {
    "first_batch_from_loader_s",
    "loader_init_s",
    "epochs",
    "first_epoch_samples_per_s",
    "steady_samples_per_s",
    "first_epoch_ratio",
    "first_epoch_ratio_note",
    "startup_batches",
}


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), M5STREAM_CACHE=str(cache))


def run_cli(*args: str, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "m5stream.cli", *args],
        cwd=ROOT,
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def check_schema(res: dict[str, Any]) -> None:
    assert set(res) == TOP and res["schema"] == "m5stream.bench/1"
    assert set(res["source"]) == {"uri", "format", "shards", "samples", "bytes"}
    assert set(res["config"]) == {
        "transform",
        "batch_size",
        "workers",
        "executor",
        "batches",
        "seconds",
        "epochs",
    }
    assert res["config"]["executor"] in ("inline", "threads", "processes")
    assert set(res["result"]) == {
        "batches",
        "samples",
        "bytes",
        "seconds",
        "samples_per_s",
        "mb_per_s",
        "skipped",
        "worker_restarts",
        "poison_kills",
    }
    assert res["result"]["worker_restarts"] == res["result"]["poison_kills"] == 0
    assert list(res["stages"]) == STAGES and all(v >= 0 for v in res["stages"].values())
    assert set(res["workers"]) == {"count", "utilisation"}
    assert set(res["memory"]) == {"peak_tree_pss_bytes", "peak_tree_rss_bytes"}
    assert set(res["bottleneck"]) == {"stage", "reason", "suggestion"}
    assert res["bottleneck"]["stage"] in {
        "fetch",
        "decode",
        "transform",
        "collate",
        "handoff",
        "trainer",
    }
    assert set(res["environment"]) == {"python", "numpy", "pil", "cpus"}
    r = res["result"]
    assert r["samples"] > 0 and r["seconds"] > 0
    assert r["samples_per_s"] == pytest.approx(r["samples"] / r["seconds"])
    assert all(len(p) == 2 for p in res["timeline"])
    su = res["startup"]
    assert set(su) == STARTUP
    # from just before Loader(...): making it, then iteration up to the first batch
    assert su["first_batch_from_loader_s"] >= su["loader_init_s"] >= 0
    assert su["first_batch_from_loader_s"] >= res["stages"]["first_batch"] > 0
    assert (su["first_epoch_ratio"] is None) == (su["first_epoch_ratio_note"] is not None)
    assert (su["first_epoch_ratio"] is None) == (len(su["epochs"]) < 2)


def test_bench_without_arguments_runs_the_demo_photos(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = run_cli("bench", "--seconds", "2", "--json", str(out), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    check_schema(res)
    assert "demo-v2" in res["source"]["uri"] and res["source"]["samples"] == 512
    assert res["source"]["format"] == "tar" and res["config"]["transform"] == "imagenet-train"
    assert res["config"]["seconds"] == 2.0 and res["config"]["workers"] == 2
    # a Python transform on photos needs worker processes; the report says which ran
    assert res["config"]["executor"] == "processes"
    assert "2 workers, processes executor" in r.stdout
    assert res["stages"]["decode"] > 0  # the photos were really decoded, in the workers
    assert res["memory"]["peak_tree_pss_bytes"] > 50e6
    assert "bottleneck" in r.stdout and "samples/s" in r.stdout
    assert "m5stream: " in r.stderr  # plain progress lines when not on a terminal
    stamp = (tmp_path / "demo-v2" / "COMPLETE").stat().st_mtime
    again = run_cli("bench", "--batches", "2", "--quiet", "--executor", "inline", cache=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 workers, inline executor" in again.stdout  # the user's override
    assert (tmp_path / "demo-v2" / "COMPLETE").stat().st_mtime == stamp  # reused, not remade
    assert again.stderr == ""


def test_compare_torch_gives_a_ratio_and_a_plot(tmp_path: Path) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=4, per_shard=32)
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    r = run_cli(
        "bench",
        src,
        "--batch-size",
        "8",
        "--batches",
        "6",
        "--compare",
        "torch,s3torchconnector",
        "--json",
        str(out),
        "--plot",
        str(png),
        "--quiet",
        cache=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    check_schema(res)
    assert res["config"]["transform"] == "raw" and res["result"]["batches"] == 6
    assert res["result"]["samples"] == 48
    torch_peer = res["compare"]["torch"]
    assert torch_peer["status"] == "ok" and torch_peer["samples"] == 48
    assert torch_peer["workers"] == 2 and torch_peer["batch_size"] == 8
    assert torch_peer["ratio"] == pytest.approx(
        res["result"]["samples_per_s"] / torch_peer["samples_per_s"]
    )
    s3tc = res["compare"]["s3torchconnector"]
    assert s3tc["status"] == "skipped" and "s3://" in s3tc["reason"]
    assert "vs torch" in r.stdout and "m5stream is" in r.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 600 and im.size[1] > 300


def test_bench_over_whole_epochs_gives_the_start_up_figures(tmp_path: Path) -> None:
    """``--epochs 3``: exactly 3 epochs of one Loader; the time to the first batch from
    ``Loader(...)`` and the first epoch's samples/s over the steady (epochs 2-3)."""
    src = make_tar_dataset(tmp_path / "d", shards=2, per_shard=16)
    out = tmp_path / "r.json"
    r = run_cli(
        "bench",
        src,
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--json",
        str(out),
        "--quiet",
        cache=tmp_path / "c",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    check_schema(res)
    assert res["config"]["epochs"] == 3 and res["config"]["seconds"] is None
    su = res["startup"]
    epochs = su["epochs"]
    assert [(e["batches"], e["samples"]) for e in epochs] == [(4, 32)] * 3
    ends = [e["end_from_loader_s"] for e in epochs]
    assert su["first_batch_from_loader_s"] > 0 and ends == sorted(ends)
    assert ends[0] >= su["first_batch_from_loader_s"]
    assert res["result"]["batches"] == 3 * 4 - 1  # the first batch is timed apart
    assert su["first_epoch_samples_per_s"] == pytest.approx(32 / ends[0])
    rates = [32 / (ends[1] - ends[0]), 32 / (ends[2] - ends[1])]
    assert su["steady_samples_per_s"] == pytest.approx(sum(rates) / 2)  # median of two
    assert su["first_epoch_ratio"] > 0 and su["first_epoch_ratio_note"] is None
    assert su["first_epoch_ratio"] == pytest.approx(
        su["first_epoch_samples_per_s"] / su["steady_samples_per_s"]
    )
    assert "start-up    first batch " in r.stdout and "after Loader(...)" in r.stdout
    assert "first-epoch ratio " in r.stdout and "(epochs 2-3, median)" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--batches", "0"], "must be positive"),
        (["bench", "--batches", "3", "--seconds", "2"], "not allowed with argument"),
        (["bench", "--epochs", "2", "--batches", "3"], "not allowed with argument"),
        (["bench", "--transform", "nope"], "unknown transform 'nope'"),
        (["bench", "--compare", "torch,bogus"], "unknown peer(s) bogus"),
        (["bench", "/no/such/dir/x.tar"], "no such file"),
        (["bench", "s3://"], "not an s3://bucket/key URI"),
        (["inspect"], "the following arguments are required: source"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_and_sources_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    r = run_cli(*args, cache=tmp_path, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("m5stream") and message in lines[0], lines
    assert r.stdout == ""


def test_inspect_summarises_and_checks_every_shard(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path / "d", shards=3, per_shard=4)
    r = run_cli("inspect", pattern, "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["shards"], info["samples"], info["format"]) == (3, 12, "tar")
    assert info["bytes"] == sum(p.stat().st_size for p in (tmp_path / "d").iterdir())
    assert info["first_keys"] == ["s000000", "s000001", "s000002"]
    assert info["fields"] == {"bin": "bytes[100]", "cls": "bytes[1]"}
    assert info["shards_checked"] == 3 and info["shards_failed"] == []
    text = run_cli("inspect", pattern, cache=tmp_path)
    assert "shards       3, samples 12" in text.stdout and "3 opened, all open" in text.stdout
    # a damaged shard: found, named, exit status 1
    shard = tmp_path / "d" / "shard-00001.tar"
    shard.write_bytes(shard.read_bytes()[:700])
    bad = run_cli("inspect", pattern, "--json", cache=tmp_path)
    if bad.returncode == 2:  # the damage is already seen while building the manifest
        assert "shard-00001.tar" in bad.stderr
    else:
        assert bad.returncode == 1
        failed = json.loads(bad.stdout)["shards_failed"]
        assert [f["shard"] for f in failed] == ["shard-00001.tar"]


def test_ctrl_c_stops_workers_and_still_reports(tmp_path: Path) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=2, per_shard=64)
    cache = tmp_path / "cache-ctrl-c"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "m5stream.cli",
            "bench",
            src,
            "--seconds",
            "120",
            "--batch-size",
            "4",
        ],
        cwd=ROOT,
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()  # the first progress line: measuring has started
        assert "samples/s" in line, line
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "interrupted" in out and "samples/s" in out and "bottleneck" in out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _ours(cache):
        time.sleep(0.1)
    assert not _ours(cache), "worker processes survived Ctrl-C"


def _ours(cache: Path) -> list[int]:
    """Processes whose environment names this test's cache (the CLI and its workers)."""
    found = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/environ", "rb") as f:
                    if f"M5STREAM_CACHE={cache}".encode() in f.read():
                        found.append(int(e))
            except OSError:
                pass
    return found


def test_bench_and_inspect_a_mixture_file(tmp_path: Path) -> None:
    """``bench MIX.json``: sources, weights, transforms by preset; the report gives each
    source's part of the samples against its weight; ``inspect`` summarises the sources."""
    from tests.helpers import make_jsonl_dataset
    from tests.images import make_image_tar

    make_image_tar(tmp_path / "img", shards=2, per_shard=16)
    make_jsonl_dataset(tmp_path / "js", files=2, per_file=40)
    spec = {
        "sources": {
            "img": {"source": "img/shard-{0000..0001}.tar", "transform": "imagenet-train"},
            "notes": {"source": "js/*.jsonl"},
        },
        "weights": {"img": 0.25, "notes": 0.75},
        "granularity": "batch",
    }
    (tmp_path / "mix.json").write_text(json.dumps(spec))
    out = run_cli(
        "bench",
        str(tmp_path / "mix.json"),
        "--batches",
        "12",
        "--batch-size",
        "8",
        "--workers",
        "2",
        "--json",
        str(tmp_path / "r.json"),
        "--quiet",
        cache=tmp_path / "c",
    )
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["source"]["format"] == "mixture" and res["source"]["samples"] == 32 + 80
    src = res["sources"]
    assert set(src) == {"img", "notes"}
    assert src["img"]["weight"] == 0.25 and src["notes"]["weight"] == 0.75
    assert src["img"]["samples"] + src["notes"]["samples"] == (res["result"]["batches"] + 1) * 8
    assert src["img"]["transform_s"] > 0 and src["notes"]["transform_s"] == 0
    assert "sources     img: " in out.stdout and "(weight 25.0%)" in out.stdout
    ins = run_cli("inspect", str(tmp_path / "mix.json"), "--json", cache=tmp_path / "c")
    assert ins.returncode == 0, ins.stderr
    info = json.loads(ins.stdout)
    assert info["granularity"] == "batch" and info["weights"] == spec["weights"]
    assert {n: (s["format"], s["samples"]) for n, s in info["sources"].items()} == {
        "img": ("tar", 32),
        "notes": ("jsonl", 80),
    }
    assert info["sources"]["img"]["own_transform"] is True
    (tmp_path / "bad.json").write_text(json.dumps({**spec, "weights": {"img": 1, "x": 1}}))
    bad = run_cli("bench", str(tmp_path / "bad.json"), "--batches", "1", cache=tmp_path / "c")
    assert bad.returncode == 2
    assert "unknown mixture source(s) ['x']" in bad.stderr
