"""The one resume harness every stateful m5stream component must pass.

A component is adapted to four methods (the ``torchdata.nodes`` shape): ``reset(state|None)``,
``next() -> list[int]`` (the ``__index__`` of the next batch; ``StopIteration`` after the last
epoch), ``get_state()`` and ``shutdown()``. ``factory(num_workers, rank, world_size)`` builds
one with a batch size of ``global_batch // world_size``.

``check_resume`` asserts, for every configuration:

1. the uninterrupted run of every rank, re-assembled rank by rank, equals the reference global
   batches (so the order depends neither on ``num_workers`` nor on ``world_size``);
2. every sample appears exactly once per epoch across ranks (less the ``drop_last`` rest),
   unless ``exactly_once=False`` (a mixture draws its sources by weight, with repeats);
3. at each cut point, a fresh component of *another* configuration (other ``num_workers``,
   other ``world_size`` with the same global batch) loaded with the state saved there continues
   with exactly the batches of the uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Resumable(Protocol):
    def reset(self, state: dict[str, Any] | None) -> None: ...
    def next(self) -> list[int]: ...
    def get_state(self) -> dict[str, Any]: ...
    def shutdown(self) -> None: ...


Factory = Callable[[int, int, int], Resumable]


def run_all(
    node: Resumable, cuts: set[int] | None = None
) -> tuple[list[list[int]], dict[int, dict[str, Any]]]:
    """Run to the end; return the batches and the state saved after batch ``c`` for c in cuts."""
    batches: list[list[int]] = []
    states: dict[int, dict[str, Any]] = {}
    if cuts and 0 in cuts:
        states[0] = node.get_state()
    while True:
        try:
            batches.append(node.next())
        except StopIteration:
            break
        if cuts and len(batches) in cuts:
            states[len(batches)] = node.get_state()
    return batches, states


def _ranks(factory: Factory, nw: int, ws: int, cuts: set[int] | None) -> list[tuple[Any, Any]]:
    out = []
    for r in range(ws):
        node = factory(nw, r, ws)
        try:
            node.reset(None)
            out.append(run_all(node, cuts))
        finally:
            node.shutdown()
    return out


def check_resume(
    factory: Factory,
    *,
    configs: Sequence[tuple[int, int]],
    num_samples: int,
    global_batch: int,
    epochs: int,
    drop_last: bool,
    num_cuts: int = 20,
    exactly_once: bool = True,
) -> None:
    ref_node = factory(0, 0, 1)
    ref_node.reset(None)
    try:
        reference, _ = run_all(ref_node)
    finally:
        ref_node.shutdown()
    per_epoch = len(reference) // epochs
    assert per_epoch * epochs == len(reference)
    for e in range(epochs if exactly_once else 0):
        seen = [i for b in reference[e * per_epoch : (e + 1) * per_epoch] for i in b]
        assert len(seen) == len(set(seen)), f"epoch {e} repeats samples"
        expect = num_samples - (num_samples % global_batch if drop_last else 0)
        assert len(seen) == expect, f"epoch {e} has {len(seen)} samples, expected {expect}"
        if not drop_last:
            assert sorted(seen) == list(range(num_samples))
    total = len(reference)
    step = max(1, total // num_cuts)
    cuts = sorted({*range(1, total, step), 0, per_epoch, total - 1} - {total})
    assert len(cuts) >= min(num_cuts, total), cuts

    for i, (nw, ws) in enumerate(configs):
        runs = _ranks(factory, nw, ws, set(cuts))
        for t in range(total):
            glued = [i for batches, _ in runs for i in (batches[t] if t < len(batches) else [])]
            assert glued == reference[t], (
                f"num_workers={nw} world_size={ws}: global step {t} differs from the reference"
            )
        nw2, ws2 = configs[(i + 1) % len(configs)]
        if (nw2, ws2) == (nw, ws):
            nw2 = (nw + 1) % 2
        # the state of rank 0 describes the position of all ranks (one global step)
        for c in cuts:
            state = runs[0][1][c]
            continued: list[list[int]] = [[] for _ in range(ws2)]
            for r in range(ws2):
                node = factory(nw2, r, ws2)
                try:
                    node.reset(state)
                    continued[r] = run_all(node)[0]
                finally:
                    node.shutdown()
            for t in range(c, total):
                glued = [i for b in continued for i in (b[t - c] if t - c < len(b) else [])]
                assert glued == reference[t], (
                    f"resume at {c} from (nw={nw}, ws={ws}) into (nw={nw2}, ws={ws2}): "
                    f"global step {t} differs"
                )
            assert all(len(b) == total - c for b in continued), (
                f"resume at {c}: ranks produced {[len(b) for b in continued]} batches, "
                f"expected {total - c}"
            )
