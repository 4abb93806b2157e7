"""m5stream: deterministic, seekable, multiprocess data loading for ML training.

See README.md for the quickstart and the determinism contract.
"""

from . import transforms
from .catalog import Manifest
from .dataset import Dataset, dataset
from .errors import (
    ConfigError,
    CorruptData,
    M5Error,
    NotFound,
    PermissionDenied,
    SlotsExhausted,
    StateMismatch,
    WorkerDied,
    WorkerError,
)
from .loader import Loader

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CorruptData",
    "Dataset",
    "Loader",
    "M5Error",
    "Manifest",
    "NotFound",
    "PermissionDenied",
    "SlotsExhausted",
    "StateMismatch",
    "WorkerDied",
    "WorkerError",
    "__version__",
    "dataset",
    "transforms",
]
