"""The loader's checkpoint state: a small JSON-serialisable dict, versioned.

``step`` is the number of *global* batches of ``epoch`` already delivered; because the order is
a pure function of the fields below, that integer is the whole position, whatever
``num_workers`` or ``world_size`` produced it (elastic resume keeps ``global_batch_size``).
"""

from __future__ import annotations

from typing import Any

from .errors import StateMismatch

__all__ = ["STATE_VERSION", "check_mixture_state", "check_state"]

STATE_VERSION = 1
#: fields that must be equal between the saved state and the loader that loads it
ORDER_FIELDS = ("seed", "shuffle", "block_size", "global_batch_size", "drop_last")


def _changes(state: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between the saved snapshot and the current one, in words."""
    old = dict(state.get("snapshot") or {})
    new = dict(expected.get("snapshot") or {})
    for k in ("num_samples", "num_shards"):  # states written before snapshots existed
        old.setdefault(k, state.get(k))
        new.setdefault(k, expected.get(k))
    names = {
        "source": "source",
        "table_version": "Glue table version",
        "where": "partition filter",
        "filter": "row filter",
        "num_shards": "files",
        "num_samples": "samples",
        "total_bytes": "bytes",
    }
    out = [
        f"{label} {old[k]!r} -> {new[k]!r}"
        for k, label in names.items()
        if k in old and k in new and old[k] != new[k]
    ]
    if not out:
        out.append("same counts, but a file's size, ETag or modification time differs")
    out.append(f"fingerprint {state['fingerprint'][:12]} -> {expected['fingerprint'][:12]}")
    return out


def check_state(
    state: dict[str, Any], expected: dict[str, Any], *, allow_changed_data: bool = False
) -> bool:
    """Raise :class:`StateMismatch` saying what differs between ``state`` and ``expected``.

    With ``allow_changed_data`` a different dataset fingerprint is accepted (the order fields
    must still match); the return value says whether the data changed."""
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
    changed = state["fingerprint"] != expected["fingerprint"]
    if changed and not allow_changed_data:
        raise StateMismatch(
            "the dataset changed since this state was saved ("
            + "; ".join(_changes(state, expected))
            + "): resuming would silently change the sample order. To continue on the new "
            "data, build the dataset again and pass load_state_dict(state, "
            'on_change="new_epoch"): training resumes at the start of the next epoch'
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
    if not isinstance(state["step"], int) or state["step"] < 0:
        raise StateMismatch(f"saved step {state['step']!r} is not a step number")
    if not changed and state["step"] > expected["steps_per_epoch"]:
        raise StateMismatch(
            f"saved step {state['step']!r} is outside [0, {expected['steps_per_epoch']}]"
        )
    return changed


def check_mixture_state(
    state: dict[str, Any], expected: dict[str, Any], *, allow_sources: bool = False
) -> dict[str, Any]:
    """The saved ``state["mixture"]`` once it fits ``expected`` (a loader's): every source in
    both has the same fingerprint (else :class:`StateMismatch` names it), the sources are
    the same unless ``allow_sources``, and the epoch length is the same."""
    if not isinstance(state, dict) or not isinstance(state.get("mixture"), dict):
        raise StateMismatch("this loader reads a mixture, but the state was not saved on one")
    saved = state["mixture"]
    try:
        old, new = dict(saved["sources"]), dict(expected["sources"])
        saved["schedule"]["sources"]
    except (KeyError, TypeError):
        raise StateMismatch("malformed mixture state: it lacks its sources or schedule") from None
    changed = [n for n in old if n in new and old[n] != new[n]]
    if changed:
        raise StateMismatch(
            "the data of mixture source(s) "
            + ", ".join(f"{n!r} (fingerprint {old[n][:12]} -> {new[n][:12]})" for n in changed)
            + " changed since this state was saved: resuming would silently change what "
            "they yield. Give the changed data a new source name and load with "
            'on_change="reweight" to draw it from the saved step on'
        )
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    if (added or removed) and not allow_sources:
        raise StateMismatch(
            f"the mixture's sources differ from the saved ones (added {added}, removed "
            f'{removed}): pass on_change="reweight" to draw the new set from the saved step on'
        )
    if saved.get("epoch_samples") != expected["epoch_samples"]:
        raise StateMismatch(
            f"mixture epoch_samples: saved {saved.get('epoch_samples')!r}, loader "
            f"{expected['epoch_samples']!r}"
        )
    return saved
