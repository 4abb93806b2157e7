"""The package's one at-fork hook: what a forked child must reset, registered by its owner.

A fork copies process-wide state the child cannot use: thread pools without their threads,
locks another thread held at the fork, native clients whose event-loop threads did not
survive. The module owning such state registers a reset with :func:`on_fork_in_child`;
this module installs a single ``os.register_at_fork(after_in_child=...)`` (when it is first
imported) that runs every registered callback, in registration order, in each forked child.

A callback that raises does not keep the others from running: the first error is raised
again once all have run, and the interpreter reports it as it reports any at-fork error (the
child goes on). The bottom of the package: it imports nothing of m5stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["callbacks", "on_fork_in_child"]

ForkCallback = Callable[[], None]

# A list, not a WeakSet: the callbacks are module-level functions, alive as long as their
# modules, and a list keeps the registration order (resets that depend on one another run
# in the order their modules were imported, as separate at-fork hooks did).
_CALLBACKS: list[ForkCallback] = []


def on_fork_in_child(fn: ForkCallback) -> ForkCallback:
    """Run ``fn()`` in every child forked from now on (once per fork; registering the same
    function again changes nothing). Returns ``fn``, so it also works as a decorator."""
    if fn not in _CALLBACKS:
        _CALLBACKS.append(fn)
    return fn


def callbacks() -> tuple[ForkCallback, ...]:
    """The registered callbacks, in the order they run."""
    return tuple(_CALLBACKS)


def _after_fork_in_child() -> None:
    error: BaseException | None = None
    for fn in list(_CALLBACKS):
        try:
            fn()
        except BaseException as exc:  # the other resets must still run in this child
            if error is None:
                error = exc
    if error is not None:
        raise error


os.register_at_fork(after_in_child=_after_fork_in_child)
