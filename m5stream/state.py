"""The loader's checkpoint state: a small JSON-serialisable dict, versioned.

``step`` is the number of *global* batches of ``epoch`` already delivered; because the order is
a pure function of the fields below, that integer is the whole position, whatever
``num_workers`` or ``world_size`` produced it (elastic resume keeps ``global_batch_size``).
"""

from __future__ import annotations

from typing import Any

from .errors import StateMismatch

__all__ = ["STATE_VERSION", "check_state"]

STATE_VERSION = 1
#: fields that must be equal between the saved state and the loader that loads it
ORDER_FIELDS = ("seed", "shuffle", "block_size", "global_batch_size", "drop_last")


def check_state(state: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise :class:`StateMismatch` saying what differs between ``state`` and ``expected``."""
    if not isinstance(state, dict):
        raise StateMismatch(f"loader state must be a dict, not {type(state).__name__}")
    version = state.get("version")
    if version != STATE_VERSION:
        raise StateMismatch(
            f"loader state version {version!r} is not supported (expected {STATE_VERSION})"
        )
    missing = [k for k in ("fingerprint", "epoch", "step", *ORDER_FIELDS) if k not in state]
    if missing:
        raise StateMismatch(f"loader state lacks field(s) {missing}")
    if state["fingerprint"] != expected["fingerprint"]:
        raise StateMismatch(
            "the dataset changed since this state was saved: fingerprint "
            f"{state['fingerprint'][:16]}... (num_samples={state.get('num_samples')}, "
            f"num_shards={state.get('num_shards')}) vs now {expected['fingerprint'][:16]}... "
            f"(num_samples={expected['num_samples']}, num_shards={expected['num_shards']}); "
            "resuming would silently change the sample order"
        )
    diffs = [
        f"{k}: saved {state[k]!r}, loader {expected[k]!r}"
        for k in ORDER_FIELDS
        if state[k] != expected[k]
    ]
    if diffs:
        raise StateMismatch(
            "loader configuration does not match the saved state (" + "; ".join(diffs) + ")"
        )
    if not (isinstance(state["step"], int) and 0 <= state["step"] <= expected["steps_per_epoch"]):
        raise StateMismatch(
            f"saved step {state['step']!r} is outside [0, {expected['steps_per_epoch']}]"
        )
