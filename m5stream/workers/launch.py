"""Starting worker processes cheaply: the payload pickled once, and no re-run of ``__main__``.

A worker needs the dataset, the transforms and the seed: its *payload*. :class:`Payload`
pickles them once in the trainer (a restarted worker gets the same bytes) and notes which
modules the pickle refers to, so that the forkserver can import them once for every worker
(:func:`context`) instead of each worker importing them as it unpickles.

``multiprocessing`` makes every forkserver or spawn child re-run the trainer's ``__main__``
script (as ``__mp_main__``) before it unpickles its arguments, so that functions defined in
the script can be found. A training script imports torch and builds its model at module
level: each worker then pays that again (seconds of CPU per worker, on the cores the first
batches need). When the payload refers to nothing in ``__main__``, :func:`start_process`
starts the child without it: the forkserver's ``Popen`` with the main module left out of the
child's preparation data. A payload that does refer to ``__main__`` (a transform defined in
the script) is started the standard way.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import pickle
from multiprocessing import reduction
from typing import Any

__all__ = ["Payload", "context", "start_process"]

#: what every worker imports anyway, preloaded into the forkserver; first, before numpy loads,
#: the package that gives workers one compute thread each (see its docstring)
_PRELOAD = ("_m5stream_forkserver", "numpy", "m5stream.workers.worker")


class _Scan(reduction.ForkingPickler):
    """The ForkingPickler, noting the module of every class and function it pickles."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        owner = obj if isinstance(obj, type) else type(obj)
        mod = getattr(obj, "__module__", None) if callable(obj) else owner.__module__
        if isinstance(mod, str):
            self.modules.add(mod)
        return NotImplemented


class Payload:
    """What every worker of a pool is started with, pickled once (see module docstring)."""

    def __init__(self, value: Any) -> None:
        buf = io.BytesIO()
        scan = _Scan(buf)
        scan.dump(value)
        self.data = buf.getvalue()
        #: top-level packages the pickle refers to (to preload), ``__main__`` apart
        self.modules = tuple(sorted({m for m in scan.modules if m != "__main__"}))
        #: the pickle refers to the trainer's ``__main__``: the child must run it first
        self.needs_main = "__main__" in scan.modules or "__mp_main__" in scan.modules

    def load(self) -> Any:
        return pickle.loads(self.data)


def context(start_method: str | None, preload: tuple[str, ...] = ()) -> Any:
    """The multiprocessing context workers start with: ``forkserver`` unless asked otherwise
    (never plain ``fork``: the trainer may hold threads - CUDA, the AWS CRT - that a forked
    child inherits broken). The forkserver imports ``preload`` once; this applies when it
    starts, i.e. for the interpreter's first pool."""
    method = start_method or (
        "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    )
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([*_PRELOAD, *preload])
    return ctx


def _lean_popen() -> type | None:
    """The forkserver ``Popen`` that leaves ``__main__`` out of the child's preparation data
    (``None`` where this Python's multiprocessing is not the one it was written against)."""
    try:
        from multiprocessing import forkserver, popen_forkserver, spawn, util
        from multiprocessing.context import set_spawning_popen
    except ImportError:
        return None
    base = popen_forkserver.Popen
    needed = (
        hasattr(forkserver, "connect_to_new_process"),
        hasattr(forkserver, "read_signed"),
        hasattr(spawn, "get_preparation_data"),
        "_launch" in vars(base),
    )
    if not all(needed):
        return None

    class LeanPopen(base):  # type: ignore[misc, valid-type]
        def _launch(self, process_obj: Any) -> None:
            # the stock _launch, with the main module's entries dropped
            prep = spawn.get_preparation_data(process_obj._name)
            prep.pop("init_main_from_path", None)
            prep.pop("init_main_from_name", None)
            buf = io.BytesIO()
            set_spawning_popen(self)
            try:
                reduction.dump(prep, buf)
                reduction.dump(process_obj, buf)
            finally:
                set_spawning_popen(None)
            self.sentinel, w = forkserver.connect_to_new_process(self._fds)
            parent_w = os.dup(w)
            close = util.close_fds  # type: ignore[attr-defined]
            self.finalizer = util.Finalize(self, close, (parent_w, self.sentinel))
            with open(w, "wb", closefd=True) as f:
                f.write(buf.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    return LeanPopen


_LEAN = _lean_popen()


class LeanProcess(mp.context.ForkServerProcess):
    """A forkserver process started by the lean ``Popen`` (a class at module level: the
    process object is pickled to the child, which imports this module anyway)."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        assert _LEAN is not None
        return _LEAN(process_obj)


def start_process(ctx: Any, payload: Payload, **kwargs: Any) -> Any:
    """A started ``ctx.Process(**kwargs)``; without re-running ``__main__`` in the child
    when ``payload`` does not need it and the context is the forkserver."""
    lean = _LEAN is not None and not payload.needs_main
    if lean and ctx.get_start_method() == "forkserver":
        p = LeanProcess(**kwargs)
    else:
        p = ctx.Process(**kwargs)
    p.start()
    return p
