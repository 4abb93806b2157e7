"""AutoResume end to end: ``examples/train_autoresume.py`` on S3 data with S3 checkpoints,
killed with SIGKILL (once while a checkpoint upload is in flight) and restarted, reproduces an
uninterrupted run's per-step losses bit for bit and never picks a partial checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from m5stream import checkpoint
from m5stream.storage import s3
from tests.integration.conftest import BUCKET

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_autoresume.py"
STEPS, EVERY = 60, 10


def _cmd(data: str, ckpt: str, log: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(EXAMPLE),
        data,
        ckpt,
        "--steps",
        str(STEPS),
        "--every",
        str(EVERY),
        "--log",
        str(log),
        *extra,
    ]


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), M5STREAM_CACHE=str(cache))


def _losses(log: Path) -> dict[int, str]:
    """Step -> loss; a step run again after a restart must give the same loss."""
    out: dict[int, str] = {}
    for line in log.read_text().splitlines():
        if line.startswith("step "):
            _, s, _, loss = line.split()
            assert out.setdefault(int(s), loss) == loss, f"step {s} differs after a restart"
    return out


def _wait_for(log: Path, p: subprocess.Popen[bytes], pred: object, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in reversed(log.read_text().splitlines()):
                if pred(line):  # type: ignore[operator]
                    return line
        assert p.poll() is None, "the trainer exited before the point to kill it"
        time.sleep(0.005)
    raise AssertionError("timed out waiting for the trainer")


def test_killed_and_restarted_training_matches_an_uninterrupted_run(
    s3_endpoint: str, tmp_path: Path
) -> None:
    from examples.train_autoresume import make_data

    data = f"s3://{BUCKET}/autoresume/data/"
    make_data(data)
    env = _env(tmp_path / "cache")

    ref_log = tmp_path / "ref.log"
    r = subprocess.run(
        _cmd(data, f"s3://{BUCKET}/autoresume/ref-ckpt", ref_log), env=env, timeout=300
    )
    assert r.returncode == 0
    ref = _losses(ref_log)
    assert sorted(ref) == list(range(1, STEPS + 1))

    ckpt = f"s3://{BUCKET}/autoresume/ckpt"
    log = tmp_path / "run.log"
    # 1: SIGKILL mid-epoch, between checkpoints: once checkpoint 10 is complete (its upload
    # runs beside training, so "step 14" alone does not say it is)
    p = subprocess.Popen(_cmd(data, ckpt, log), env=env)
    _wait_for(log, p, lambda line: line == "ckpt-done 10")
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    done = [int(ln.split()[1]) for ln in log.read_text().splitlines() if ln.startswith("ckpt-done")]
    assert checkpoint.latest(ckpt) == f"{ckpt}/step-{max(done):06d}"

    # 2: SIGKILL while a (large) checkpoint upload is in flight; retried until the kill really
    # landed before the upload's manifest (the previous checkpoint must then be the latest)
    in_flight = False
    for _ in range(3):
        p = subprocess.Popen(_cmd(data, ckpt, log, "--ballast-mb", "48"), env=env)
        line = _wait_for(log, p, lambda ln: ln.startswith("ckpt-start") and int(ln.split()[1]) > 10)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        started = int(line.split()[1])
        newest = checkpoint.latest(ckpt)
        if newest != f"{ckpt}/step-{started:06d}":
            in_flight = True  # the checkpoint being uploaded was not picked up
            assert newest is not None and newest < f"{ckpt}/step-{started:06d}"
            bucket, prefix = BUCKET, f"autoresume/ckpt/step-{started:06d}/"
            keys = [o.key for o in s3.client().list(bucket, prefix)]  # type: ignore[union-attr]
            assert f"{prefix}MANIFEST.json" not in keys
            break
    assert in_flight, "no kill landed during an upload"

    # 3: run to the end
    r = subprocess.run(_cmd(data, ckpt, log), env=env, timeout=300)
    assert r.returncode == 0
    got = _losses(log)
    assert got == ref  # bit for bit (float.hex), every step
