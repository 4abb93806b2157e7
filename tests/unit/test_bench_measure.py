"""``measure()``'s start-up arithmetic on a fake loader and a fake clock: the time to the first
batch from the origin (just before the loader is made), each epoch's end, and the first-epoch
ratio. Every duration is a multiple of 1/2, so the figures are exact."""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterator

import pytest

from m5stream.bench.measure import Epoch, epoch_rates, measure

measure_mod = importlib.import_module("m5stream.bench.measure")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLoader:
    """Each epoch yields one batch of 10 samples per duration, advancing the clock by it
    first; iterating past the last schedule repeats it."""

    def __init__(self, clock: Clock, epochs: list[list[float]]) -> None:
        self.clock, self.epochs, self.started = clock, epochs, 0

    def __iter__(self) -> Iterator[list[int]]:
        durations = self.epochs[min(self.started, len(self.epochs) - 1)]
        self.started += 1
        for d in durations:
            self.clock.now += d
            yield list(range(10))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(100.0)
    monkeypatch.setattr(measure_mod, "time", types.SimpleNamespace(perf_counter=c))
    return c


# epoch 1: the first batch takes 2 s (start-up), then 3 x 0.5 s: ends 4 s after the origin
# (0.5 s of it making the loader), 40 samples -> 10/s; epochs 2 and 3: 2 s each -> 20/s;
# epoch 4: 4 s -> 10/s. Steady: the median of 20, 20, 10 = 20; ratio 0.5.
SCHEDULE = [[2.0, 0.5, 0.5, 0.5], [0.5] * 4, [0.5] * 4, [1.0] * 4]


def test_first_batch_and_epochs_are_timed_from_the_origin(clock: Clock) -> None:
    origin = clock.now
    clock.now += 0.5  # Loader(...) takes half a second
    loader = FakeLoader(clock, SCHEDULE)
    m = measure(loader, max_batches=None, max_seconds=None, max_epochs=4, origin=origin)
    assert m.iter_start_s == 0.5
    assert m.first_batch_s == 2.0  # from the start of iteration, as before
    assert m.first_batch_from_origin_s == 2.5
    assert m.epochs == [
        Epoch(end_s=4.0, batches=4, samples=40),
        Epoch(end_s=6.0, batches=4, samples=40),
        Epoch(end_s=8.0, batches=4, samples=40),
        Epoch(end_s=12.0, batches=4, samples=40),
    ]
    assert loader.started == 4  # exactly 4 epochs: no fifth one begun
    # the timed part is unchanged: after the first batch, to the last
    assert (m.batches, m.samples) == (15, 150) and m.seconds == 12.0 - 2.5
    assert epoch_rates(m.epochs) == {
        "first_epoch_samples_per_s": 10.0,
        "steady_samples_per_s": 20.0,
        "first_epoch_ratio": 0.5,
        "first_epoch_ratio_note": None,
    }


def test_without_an_origin_start_up_is_timed_from_iteration(clock: Clock) -> None:
    m = measure(FakeLoader(clock, SCHEDULE), max_batches=None, max_seconds=None, max_epochs=2)
    assert m.iter_start_s == 0.0 and m.first_batch_from_origin_s == m.first_batch_s == 2.0
    assert [e.end_s for e in m.epochs] == [3.5, 5.5]
    r = epoch_rates(m.epochs)
    assert r["first_epoch_samples_per_s"] == 40 / 3.5 and r["steady_samples_per_s"] == 20.0
    assert r["first_epoch_ratio"] == pytest.approx(40 / 3.5 / 20)


def test_fewer_than_two_epochs_give_no_ratio_and_say_why(clock: Clock) -> None:
    origin = clock.now
    # stopped by the batch budget within epoch 1 (the first batch is not counted)
    m = measure(FakeLoader(clock, SCHEDULE), max_batches=2, max_seconds=None, origin=origin)
    assert m.epochs == [] and m.first_batch_from_origin_s == 2.0
    assert epoch_rates(m.epochs) == {
        "first_epoch_samples_per_s": None,
        "steady_samples_per_s": None,
        "first_epoch_ratio": None,
        "first_epoch_ratio_note": "run ended within epoch 1",
    }
    # within epoch 2: the first epoch's rate is known, the steady one is not
    clock.now, origin = 200.0, 200.0
    m = measure(FakeLoader(clock, SCHEDULE), max_batches=5, max_seconds=None, origin=origin)
    assert m.epochs == [Epoch(end_s=3.5, batches=4, samples=40)]
    r = epoch_rates(m.epochs)
    assert r["first_epoch_samples_per_s"] == 40 / 3.5 and r["first_epoch_ratio"] is None
    assert r["first_epoch_ratio_note"] == "run ended within epoch 2"


def test_steady_rate_is_the_median_of_the_later_epochs() -> None:
    epochs = [Epoch(5.0, 1, 50), Epoch(6.0, 1, 40), Epoch(8.0, 1, 40), Epoch(8.5, 1, 40)]
    # later epochs: 40/1 = 40, 40/2 = 20, 40/0.5 = 80 -> median 40; first 50/5 = 10
    assert epoch_rates(epochs)["steady_samples_per_s"] == 40.0
    assert epoch_rates(epochs)["first_epoch_ratio"] == 0.25
    # an even count: the mean of the middle two (40 and 20)
    assert epoch_rates(epochs[:3])["steady_samples_per_s"] == 30.0


def test_an_empty_source_ends_the_pass(clock: Clock) -> None:
    loader = FakeLoader(clock, [[]])
    m = measure(loader, max_batches=None, max_seconds=None, max_epochs=3)
    assert loader.started == 2 and m.epochs == [] and m.first_batch_s is None
    assert m.first_batch_from_origin_s is None
