"""The error hierarchy: builtin bases, context in messages, pickling across processes."""

from __future__ import annotations

import pickle

import pytest

import m5stream as m5
from m5stream.workers.protocol import ErrorInfo


@pytest.mark.parametrize(
    "cls,base",
    [
        (m5.NotFound, FileNotFoundError),
        (m5.PermissionDenied, PermissionError),
        (m5.CorruptData, ValueError),
        (m5.ConfigError, ValueError),
        (m5.StateMismatch, ValueError),
        (m5.WorkerDied, RuntimeError),
    ],
)
def test_subclasses_and_pickling(cls: type[m5.M5Error], base: type) -> None:
    err = cls("went wrong", uri="/data/x.tar", key="k1", index=7)
    assert isinstance(err, m5.M5Error) and isinstance(err, base)
    assert str(err) == "went wrong [uri=/data/x.tar key=k1 index=7]"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and str(again) == str(err)
    assert again.uri == "/data/x.tar" and again.key == "k1" and again.index == 7


def test_error_info_reraises_m5_errors_as_themselves() -> None:
    try:
        raise m5.CorruptData("bad bytes", uri="/x.tar")
    except m5.CorruptData as exc:
        info = ErrorInfo.capture(exc, "key7", 7)
    again = pickle.loads(pickle.dumps(info)).to_exception(2)
    assert isinstance(again, m5.CorruptData)
    assert again.key == "key7"
    assert any("Raised in worker 2" in n for n in again.__notes__)


def test_error_info_wraps_other_errors_with_traceback() -> None:
    def boom() -> None:
        raise KeyError("missing-field")

    try:
        boom()
    except KeyError as exc:
        info = ErrorInfo.capture(exc, "k9", 9)
    err = info.to_exception(1)
    assert isinstance(err, m5.WorkerError)
    assert err.key == "k9" and err.cause_type == "KeyError"
    assert "in boom" in err.worker_traceback
    assert "KeyError: 'missing-field'" in str(err) and "worker 1" in str(err)
    assert isinstance(err.__cause__, KeyError)
    again = pickle.loads(pickle.dumps(err))
    assert again.worker_traceback == err.worker_traceback
