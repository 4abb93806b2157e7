"""m5stream: deterministic, seekable, multiprocess data loading for ML training.

See README.md for the quickstart and the determinism contract. The loader (and with it the
worker machinery) is imported on first use, so ``import m5stream.transforms`` in a serving
container loads neither the loader nor torch nor pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .batches.columns import Keys

# Eager: light. ``dataset`` is bound to the function (m5stream.source.dataset) after the
# ``m5stream.dataset`` submodule is imported, so the function is what ``m5.dataset`` names.
from .catalog import Manifest
from .catalog.glue import GlueTable
from .dataset import Dataset
from .errors import (
    ConfigError,
    CorruptData,
    M5Error,
    NotFound,
    PermissionDenied,
    SlotsExhausted,
    StateMismatch,
    Unsupported,
    WorkerDied,
    WorkerError,
)
from .source import dataset

# isort: split
# ``source`` (the function) is bound after the ``m5stream.source`` submodule was imported
# (the line above), so the function is what ``m5.source`` names, as with ``dataset``.
from .mixing import Mixture, Source, mix, source
from .storage.s3 import S3Config

__version__ = "0.1.0"

_LAZY = {"Loader": "loader", "write_shards": "writer"}
#: submodules reachable as ``m5stream.NAME`` without importing them first (``torch`` imports
#: PyTorch, ``checkpoint`` only when it saves or loads)
_SUBMODULES = ("checkpoint", "torch", "transforms")

__all__ = [
    "ConfigError",
    "CorruptData",
    "Dataset",
    "GlueTable",
    "Keys",
    "Loader",
    "M5Error",
    "Manifest",
    "Mixture",
    "NotFound",
    "PermissionDenied",
    "S3Config",
    "SlotsExhausted",
    "Source",
    "StateMismatch",
    "Unsupported",
    "WorkerDied",
    "WorkerError",
    "__version__",
    "checkpoint",
    "dataset",
    "mix",
    "source",
    "transforms",
    "write_shards",
]
# Not "torch": ``from m5stream import *`` gets every name in __all__, through __getattr__, so
# listing it would import PyTorch on a star import; ``m5stream.torch`` stays reachable lazily.


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        # importing the submodule also binds it as this package's attribute
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'm5stream' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


if TYPE_CHECKING:
    from . import checkpoint, transforms
    from . import torch as torch  # re-exported, but not in __all__ (see above)
    from .loader import Loader
    from .writer import write_shards
