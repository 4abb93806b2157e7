"""Soak in CI (issue 16): each executor runs epoch after epoch for 40 s in a process of its own
(``benchmarks/soak.py``); after warm-up its process tree's RSS may grow by at most 5% and its
open descriptors, threads and memory mappings not at all. The verdict itself is tested on
made-up samples, so a leak would be seen."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 40


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_no_growth_over_many_epochs(executor: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--executor", executor]
    cmd += ["--seconds", str(SECONDS), "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SECONDS + 120)
    result = json.loads(out.read_text())["results"][0]
    assert result["ran_as"] == executor
    assert result["epochs"] >= 10, result["epochs"]
    assert result["ok"], f"{result['reason']}: {proc.stdout}{proc.stderr[-2000:]}"
    assert proc.returncode == 0


def _samples(**series: list[int]) -> list[dict[str, float]]:
    n = len(next(iter(series.values())))
    base = {"rss": 100 << 20, "pss": 80 << 20, "fds": 10, "threads": 4, "maps": 400}
    rows = []
    for i in range(n):
        row: dict[str, float] = {"t": float(i), **base}
        for k, v in series.items():
            row[k] = v[i]
        rows.append(row)
    return rows


def test_verdict_sees_growth() -> None:
    soak = _soak()
    mb = 1 << 20
    flat = _samples(fds=[10] * 10)
    assert soak.verdict(flat, 2.0, 0.05)["ok"]
    # warm-up growth is not counted; growth after it is
    warm = _samples(fds=[3, 6, 10, 10, 10, 10, 10, 10, 10, 10])
    assert soak.verdict(warm, 2.0, 0.05)["ok"]
    leak = _samples(fds=[10, 10, 10, 10, 10, 10, 11, 11, 11, 11])
    got = soak.verdict(leak, 2.0, 0.05)
    assert not got["ok"] and got["reason"] == "fds grew from 10 to 11 (max 11)"
    # a thread that comes and goes after the baseline is growth too (max above the baseline)
    blip = _samples(threads=[4, 4, 4, 4, 4, 9, 4, 4, 4, 4])
    assert soak.verdict(blip, 2.0, 0.05)["reason"] == "threads grew from 4 to 4 (max 9)"
    rss = [100 * mb] * 5 + [106 * mb] * 5
    got = soak.verdict(_samples(rss=rss), 2.0, 0.05)
    assert not got["ok"] and got["reason"] == "RSS grew 6.0% (> 5%)"
    rss = [100 * mb] * 5 + [104 * mb] * 5
    assert soak.verdict(_samples(rss=rss), 2.0, 0.05)["ok"]
    assert soak.verdict(flat[:7], 2.0, 0.05)["reason"] == "only 5 samples after warm-up (< 6)"
