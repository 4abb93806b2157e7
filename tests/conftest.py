"""Shared fixtures: an isolated m5stream cache, and leak checks around every test.

After each test, no worker process may remain (the multiprocessing forkserver and resource
tracker, which Python keeps for the life of the interpreter, are allowed), no mapping of an
m5stream memfd may remain in this process once garbage is collected, and ``/dev/shm`` must hold
nothing new.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import (
    descendants,
    infrastructure_pids,
    our_memfd_mappings,
    shm_entries,
    wait_gone,
)


@pytest.fixture(scope="session", autouse=True)
def _m5_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["M5STREAM_CACHE"] = str(tmp_path_factory.mktemp("m5cache"))


@pytest.fixture(autouse=True)
def _no_leaks() -> object:
    shm_before = shm_entries()
    kids_before = descendants()
    yield
    gc.collect()
    allowed = kids_before | infrastructure_pids()
    left = wait_gone(descendants() - allowed, timeout=5.0)
    assert not left, f"child processes left behind: {sorted(left)}"
    assert not our_memfd_mappings(), "m5stream shared memory still mapped after the test"
    new_shm = {e for e in shm_entries() - shm_before if "m5" in e or "torch" in e}
    assert not new_shm, f"/dev/shm entries left behind: {sorted(new_shm)}"
