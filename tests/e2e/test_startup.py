"""Start-up of the processes executor: workers started at ``Loader(...)``, the first batches
made in the trainer while they start (``inline_start``), the same batches either way.

The pool starts when the Loader is made; until a worker holds its payload the trainer makes
each step itself, in plan order, with the workers' fused builder; then every later step is a
worker's. None of this may change a batch: the tests compare exact indices and bytes with
the inline executor's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream import transforms as T
from tests.e2e import fns
from tests.helpers import make_tar_dataset, our_memfd_mappings, wait_gone
from tests.images import make_image_tar

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    return m5.dataset(make_image_tar(tmp_path_factory.mktemp("img"), shards=3, per_shard=12))


def _train() -> T.Compose:
    return T.Compose(
        [T.DecodeImage(), T.RandomResizedCrop(64), T.RandomHorizontalFlip(), T.Normalize()]
    )


def _epoch(lo: m5.Loader) -> list[tuple[list[int], bytes, list[bytes]]]:
    return [(b["__index__"].tolist(), b["jpg"].tobytes(), list(b["cls"])) for b in lo]


@pytest.mark.parametrize("restarts", [0, 1])
def test_batches_equal_the_inline_executor_and_the_start_is_inline(
    photos: m5.Dataset, restarts: int
) -> None:
    """Two epochs of the imagenet-style pipeline: identical to num_workers=0, byte for
    byte; the first batch is the trainer's unless max_worker_restarts asks for isolation."""
    opts: dict[str, Any] = dict(shuffle=True, seed=3, output="numpy", copy=True)
    with m5.Loader(photos, 5, transform=_train(), num_workers=0, **opts) as lo:
        want = [_epoch(lo), _epoch(lo)]
    with m5.Loader(
        photos, 5, transform=_train(), num_workers=2, max_worker_restarts=restarts, **opts
    ) as lo:
        got = [_epoch(lo), _epoch(lo)]
        stats = lo.stats
    assert got == want and len(want[0]) == 8
    assert stats["batches"] == 16 and stats["samples"] == 72
    if restarts:
        assert stats["startup_batches"] == 0
    else:
        assert 1 <= stats["startup_batches"] <= 16


def test_the_trainer_hands_over_to_the_workers_once_and_for_good(tmp_path: Path) -> None:
    """Each batch says which process made it: the trainer's come first, then only workers'."""
    src = make_tar_dataset(tmp_path / "d", shards=4, per_shard=20)
    with m5.Loader(
        src, 2, transform=fns.PidAfter(0.02), num_workers=2, output="numpy", copy=True
    ) as lo:
        makers = [set(b["pid"].tolist()) for b in lo]
        workers = set(lo.worker_pids)
        stats = lo.stats
    me = os.getpid()
    assert len(makers) == 40 and all(len(m) == 1 for m in makers)
    n_inline = sum(1 for m in makers if me in m)
    assert n_inline == stats["startup_batches"] >= 1
    assert all(me in m for m in makers[:n_inline])  # the trainer's, first
    assert all(m <= workers for m in makers[n_inline:])  # then only the workers'
    assert n_inline < 40  # ~0.04 s a batch: the workers were up long before the end


def test_at_the_hand_over_the_workers_start_on_later_steps_while_the_trainer_makes_one(
    tmp_path: Path,
) -> None:
    """The step at which a worker is first found ready is the trainer's last, made while the
    workers already work on the steps after it: the first worker batch starts before the
    trainer's last batch ends (without the overlap it could only start after)."""
    src = make_tar_dataset(tmp_path / "d", shards=4, per_shard=20)
    with m5.Loader(
        src, 2, transform=fns.Stamped(0.1), num_workers=2, output="numpy", copy=True
    ) as lo:
        batches = [
            (set(b["pid"].tolist()), b["t0"].min(), b["t1"].max(), b["__index__"].tolist())
            for b in lo
        ]
        stats = lo.stats
    me = os.getpid()
    n_inline = sum(1 for pids, *_ in batches if me in pids)
    assert n_inline == stats["startup_batches"] >= 2 and n_inline < len(batches) == 40
    assert all(me in pids for pids, *_ in batches[:n_inline])
    last_inline, first_worker = batches[n_inline - 1], batches[n_inline]
    assert me not in first_worker[0]
    assert first_worker[1] < last_inline[2]  # began before the trainer's last one ended
    assert [i for *_, idx in batches for i in idx] == list(range(80))


def test_inline_start_off_makes_every_batch_in_a_worker(tmp_path: Path) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=2, per_shard=10)
    with m5.Loader(
        src, 4, transform=fns.PidAfter(0), num_workers=2, inline_start=False, output="numpy"
    ) as lo:
        makers = {p for b in lo for p in b["pid"].tolist()}
        assert makers <= set(lo.worker_pids) and lo.stats["startup_batches"] == 0


def test_workers_start_at_construction_and_close_before_iterating(tmp_path: Path) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=2, per_shard=10)
    lo = m5.Loader(src, 4, transform=fns.PidAfter(0), num_workers=2, output="numpy")
    try:
        pids = lo.worker_pids  # started already: this waits for the start, not for a batch
        assert len(pids) == 2 and lo.stats["batches"] == 0
        assert all(os.path.exists(f"/proc/{p}") for p in pids)
    finally:
        lo.close()
    assert wait_gone(pids) == set()
    assert our_memfd_mappings() == []


def test_a_transform_that_cannot_be_sent_is_a_config_error_at_construction(
    tmp_path: Path,
) -> None:
    src = make_tar_dataset(tmp_path / "d", shards=1, per_shard=4)
    with pytest.raises(m5.ConfigError, match=r"cannot be sent to worker processes.*module level"):
        m5.Loader(src, 2, transform=lambda s: s, num_workers=2)


_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
with open({log!r}, "a") as f:  # module level: runs again in every process that imports it
    f.write(f"{{os.getpid()}}\\n")
import m5stream as m5
from tests.e2e import fns

def local(sample):
    sample["pid"] = os.getpid()
    return sample

if __name__ == "__main__":
    fn = local if sys.argv[1] == "main" else fns.PidAfter(0)
    with m5.Loader({src!r}, 2, transform=fn, num_workers=2, output="numpy") as lo:
        n = sum(len(b["__index__"]) for b in lo)
    print(n)
"""


@pytest.mark.parametrize("where", ["package", "main"])
def test_workers_rerun_the_main_script_only_when_the_transform_lives_there(
    tmp_path: Path, where: str
) -> None:
    """A training script's module level (imports, model building) is not run again in every
    worker - unless the transform is defined in it, when the workers need it to unpickle."""
    src = make_tar_dataset(tmp_path / "d", shards=2, per_shard=10)
    log = tmp_path / "imports.log"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(repo=str(REPO), log=str(log), src=src)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(script), where], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["20"]
    runs = log.read_text().split()
    assert len(runs) == (1 if where == "package" else 3), runs


def test_start_up_batches_skip_a_corrupt_sample_as_a_worker_does(tmp_path: Path) -> None:
    """A truncated JPEG among the first batches (made in the trainer) is skipped and
    recorded exactly as the inline executor records it."""
    ds = m5.dataset(make_image_tar(tmp_path / "img", shards=2, per_shard=8, corrupt=(1, 9)))
    opts: dict[str, Any] = dict(on_error="skip", output="numpy", copy=True)
    with m5.Loader(ds, 4, transform=_train(), num_workers=0, **opts) as lo:
        want, want_skips = _epoch(lo), lo.state_dict()["skipped"]
    with m5.Loader(ds, 4, transform=_train(), num_workers=2, **opts) as lo:
        got, skips = _epoch(lo), lo.state_dict()["skipped"]
        assert lo.stats["startup_batches"] >= 1
    assert got == want and skips == want_skips
    assert [r[1] for r in skips] == [1, 9] and all(isinstance(r[3], str) for r in skips)
    assert np.concatenate([np.asarray(g[0]) for g in got]).tolist() == [
        i for i in range(16) if i not in (1, 9)
    ]


_THREADS_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
import m5stream as m5
from tests.e2e import fns

if __name__ == "__main__":
    with m5.Loader({src!r}, 4, transform=fns.ThreadEnv(), num_workers=2, output="numpy",
                   inline_start=False) as lo:
        seen = {{(bytes(e), int(p)) for b in lo for e, p in zip(b["env"], b["pid"])}}
    trainer = "|".join(os.environ.get(n, "-") for n in fns.ThreadEnv.NAMES)
    print(trainer, *sorted({{e.decode() for e, _ in seen}}), len({{p for _, p in seen}}))
"""


@pytest.mark.parametrize("user_omp", [None, "3"])
def test_workers_get_one_compute_thread_unless_the_user_said_otherwise(
    tmp_path: Path, user_omp: str | None
) -> None:
    """The forkserver (a fresh one: a new interpreter) sets OpenMP/OpenBLAS/MKL to one thread
    before numpy loads, for itself and the workers forked from it; the trainer's environment
    stays as it was, and a value the user set reaches the workers unchanged."""
    src = make_tar_dataset(tmp_path / "d", shards=2, per_shard=8)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_THREADS_SCRIPT.format(repo=str(REPO), src=src)))
    env = {k: v for k, v in os.environ.items() if k not in fns.ThreadEnv.NAMES}
    env["PYTHONPATH"] = str(REPO)
    if user_omp is not None:
        env["OMP_NUM_THREADS"] = user_omp
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    trainer, workers, pids = out.stdout.split()
    if user_omp is None:
        assert (trainer, workers) == ("-|-|-", "1|1|1")
    else:
        assert (trainer, workers) == ("3|-|-", "3|1|1")
    assert pids == "2"  # both workers made batches
