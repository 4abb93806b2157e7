"""A recorded mixture Loader (``m5.mix``) with worker processes, and recording switched on by
the environment alone in a fresh process: what the database holds is what the trainer saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import m5stream as m5
from m5stream.records import recorder_of
from m5stream.records.store import RunStore
from tests.e2e.mixfns import js_to_xn, tar_to_xn
from tests.helpers import make_jsonl_dataset, make_tar_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("nw", [0, 2])
def test_mixture_run_records_sources_and_weights(tmp_path: Path, nw: int) -> None:
    a = m5.dataset(make_tar_dataset(tmp_path / "t", shards=2, per_shard=30))
    b = m5.dataset(make_jsonl_dataset(tmp_path / "j", files=2, per_file=20))
    mix = m5.mix(
        {"tar": m5.source(a, transform=tar_to_xn), "js": m5.source(b, transform=js_to_xn)},
        weights={"tar": 0.75, "js": 0.25},
    )
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    seen: Counter[str] = Counter()
    with m5.Loader(
        mix,
        8,
        num_workers=nw,
        output="numpy",
        seed=3,
        shuffle=True,
        record=url,
        record_interval=0.02,
    ) as lo:
        rec = recorder_of(lo)
        assert rec is not None
        for batch in lo:
            seen.update(batch["__source__"])
        stats = lo.stats
    with RunStore(url) as store:
        run = store.get_run(rec.run_id)
        per = Counter[str]()
        for s in store.sources(rec.run_id):
            per[s["source"]] += s["samples"]
    assert run["weights"] == {"tar": 0.75, "js": 0.25}
    assert run["source"] == mix.manifest.source and run["fingerprint"] == mix.fingerprint
    assert dict(per) == dict(seen)
    assert sum(seen.values()) == run["samples"] == stats["samples"]
    assert {n: stats["sources"][n]["samples"] for n in seen} == dict(seen)


def test_environment_alone_records_and_serves(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    src = make_tar_dataset(tmp_path / "d", shards=1, per_shard=24)
    script = (
        "import json, urllib.request, m5stream as m5\n"
        "from m5stream.records import recorder_of\n"
        f"lo = m5.Loader({src!r}, 6, output='numpy')\n"
        "n = sum(len(b['__index__']) for b in lo)\n"
        "rec = recorder_of(lo)\n"
        "text = urllib.request.urlopen(rec.metrics_url, timeout=10).read().decode()\n"
        "line = [x for x in text.splitlines() if x.startswith('m5stream_samples_total')][0]\n"
        "print(json.dumps({'n': n, 'run': rec.run_id, 'scraped': float(line.split()[-1])}))\n"
        "lo.close()\n"
    )
    env = {
        **os.environ,
        "M5STREAM_RECORD": f"sqlite:///{db}",
        "M5STREAM_METRICS_PORT": "0",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] == 24 and got["scraped"] == 24.0
    listed = subprocess.run(
        [sys.executable, "-m", "m5stream.cli", "runs", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (run,) = json.loads(listed.stdout)
    assert (run["run_id"], run["samples"], run["status"]) == (got["run"], 24, "finished")


def test_reweighted_mixture_records_the_weights_in_force(tmp_path: Path) -> None:
    a = m5.dataset(make_tar_dataset(tmp_path / "t", shards=2, per_shard=30))
    b = m5.dataset(make_jsonl_dataset(tmp_path / "j", files=2, per_file=20))

    def make() -> m5.Mixture:
        return m5.mix(
            {"tar": m5.source(a, transform=tar_to_xn), "js": m5.source(b, transform=js_to_xn)},
            weights={"tar": 0.75, "js": 0.25},
        )

    with m5.Loader(make(), 8, output="numpy", seed=3) as first:
        it = iter(first)
        next(it), next(it)
        state = first.state_dict()
        it.close()  # type: ignore[attr-defined]
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with m5.Loader(make(), 8, output="numpy", seed=3, record=url) as lo:
        lo.load_state_dict(state, weights={"tar": 0.5, "js": 0.5})
        rec = recorder_of(lo)
        assert rec is not None
        for _ in lo:
            pass
    with RunStore(url) as store:
        run = store.get_run(rec.run_id)
    assert run["weights"] == {"tar": 0.5, "js": 0.5}
