"""The m5stream command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_tar_dataset

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), M5STREAM_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "m5stream.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_without_arguments_uses_the_demo_dataset(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = _run("bench", "--batches", "3", "--repeats", "2", "--json", str(out), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "demo-v1" in r.stdout and "samples/s" in r.stdout
    res = json.loads(out.read_text())
    assert res["format"] == "tar" and res["samples_in_dataset"] == 2048
    assert len(res["samples_per_s_runs"]) == 2 and res["samples_per_s_median"] > 0
    assert res["stats"]["batches"] >= 7
    again = _run("bench", "--batches", "1", "--repeats", "1", cache=tmp_path)
    assert again.returncode == 0  # the cached demo is reused


def test_inspect_and_errors(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path / "d", shards=2, per_shard=3)
    r = _run("inspect", pattern, cache=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["shards"] == 2 and info["samples"] == 6 and info["format"] == "tar"
    assert info["first_sample"]["__key__"] == "str[7]"
    bad = _run("inspect", str(tmp_path / "missing.tar"), cache=tmp_path)
    assert bad.returncode == 2 and "no such file or directory" in bad.stderr
