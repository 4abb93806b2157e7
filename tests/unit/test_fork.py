"""The one at-fork registry: every registered reset runs once in a forked child, in order, one
failing reset does not stop the others, and no other module installs an at-fork hook."""

from __future__ import annotations

import re
from pathlib import Path

import m5stream
from m5stream import _fork, _pools, checkpoint
from m5stream.storage import buffers, s3
from tests.helpers import in_forked_child

_RAN: list[str] = []


def _first() -> None:
    _RAN.append("first")


def _failing() -> None:
    _RAN.append("failing")
    raise RuntimeError("a reset that fails")


def _last() -> None:
    _RAN.append("last")


def test_the_packages_resets_are_registered() -> None:
    registered = _fork.callbacks()
    for fn in (s3._forget_clients, buffers._reset_after_fork, checkpoint._forget_pool):
        assert fn in registered
    assert _pools._forget in registered


def test_every_callback_runs_once_in_a_forked_child_in_order() -> None:
    _RAN.clear()
    assert _fork.on_fork_in_child(_first) is _first  # usable as a decorator
    _fork.on_fork_in_child(_failing)
    _fork.on_fork_in_child(_last)
    _fork.on_fork_in_child(_first)  # again: still once
    try:
        # once each: a second hook (or a second registration) would run them twice
        assert in_forked_child(lambda: _RAN == ["first", "failing", "last"]) == b"1"
        assert _RAN == []  # nothing runs in the parent
    finally:
        _fork._CALLBACKS[:] = [f for f in _fork._CALLBACKS if f not in (_first, _failing, _last)]


def test_the_package_resets_run_in_a_forked_child() -> None:
    parent_buffers = buffers.range_buffers()
    parent_pool = _pools.process_pool("m5-test-fork", 1)

    def child() -> bool:
        return (
            buffers.range_buffers() is not parent_buffers
            and _pools.process_pool("m5-test-fork", 1) is not parent_pool
            and checkpoint._POOL is None
            and not s3._CLIENTS
        )

    checkpoint._pool()  # the parent's upload thread pool exists
    assert in_forked_child(child) == b"1"


def test_only_the_registry_installs_an_at_fork_hook() -> None:
    root = Path(m5stream.__file__).parent
    hooks = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if re.search(r"\bregister_at_fork\(", p.read_text())
    )
    assert hooks == ["_fork.py"]
