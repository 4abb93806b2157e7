"""LoaderConfig: validation, rank resolution, read-ahead budgets, and the executor choice."""

from __future__ import annotations

import numpy as np
import pytest

import m5stream as m5
from m5stream.config import LoaderConfig, ReadAheadBudget, resolve_rank
from m5stream.execution import choose_executor
from m5stream.formats.caps import FormatCaps


def test_defaults_and_normalisation() -> None:
    c = LoaderConfig.build(8, shuffle=True, seed="3", drop_last=1)  # type: ignore[arg-type]
    assert (c.shuffle, c.seed, c.drop_last, c.rank, c.world_size) == ("global", 3, True, 0, 1)
    assert c.global_batch_size == 8 and not c.pad_last
    assert LoaderConfig.build(8, world_size=2, rank=1).pad_last


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"on_error": "ignore"}, "on_error must be one of 'raise', 'skip'"),
        ({"num_workers": -1}, "num_workers must be an int >= 0"),
        ({"shuffle": "random"}, "shuffle must be"),
        ({"executor": "gpu"}, "executor must be one of"),
        ({"executor": "processes"}, "needs num_workers > 0"),
        ({"prefetch": 0}, "prefetch must be >= 1"),
        ({"rank": 2, "world_size": 2}, "need 0 <= rank < world_size"),
        ({"num_wrokers": 2}, "unknown loader option.*num_wrokers"),
    ],
)
def test_invalid_options_are_config_errors(kw: dict[str, object], match: str) -> None:
    with pytest.raises(m5.ConfigError, match=match):
        LoaderConfig.build(8, **kw)


def test_batch_size_must_be_a_positive_int() -> None:
    for bad in (0, -1, 2.0, True):
        with pytest.raises(m5.ConfigError, match="batch_size"):
            LoaderConfig.build(bad)  # type: ignore[arg-type]


def test_rank_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert resolve_rank(None, None) == (3, 4)
    assert resolve_rank(1, 2) == (1, 2)  # explicit wins
    assert LoaderConfig.build(2).rank == 3


def test_read_ahead_budgets() -> None:
    sizes = np.full(10, 2 << 20)
    cols = ReadAheadBudget.choose(
        FormatCaps(columnar=True, block_reads=True, decode_units=True),
        sizes,
        batch_size=8,
        global_batch_size=8,
        num_workers=4,
        prefetch=None,
        unit_rows=100,
    )
    assert (cols.threads, cols.depth) == (4, 10)
    assert cols.steps == 4 * 13 + 1  # a row group's worth of steps per worker
    raw = ReadAheadBudget.choose(
        FormatCaps(block_reads=True, batch_fetch=True),
        sizes,
        batch_size=8,
        global_batch_size=8,
        num_workers=2,
        prefetch=3,
        unit_rows=None,
    )
    assert (raw.threads, raw.depth, raw.steps, raw.shard_lookahead) == (0, 32, 3, 11)


def _choose(caps: FormatCaps, transform: bool = False, **kw: object) -> str:
    c = LoaderConfig.build(8, **kw)
    return choose_executor(c, caps, has_transform=transform, has_batch_transform=False)


def test_executor_choice_and_override() -> None:
    parquet = FormatCaps(columnar=True, block_reads=True, decode_units=True)
    jsonl = FormatCaps(whole_shard_fetch=True)
    assert _choose(parquet) == "threads"
    assert _choose(parquet, shuffle="block", num_workers=2) == "threads"
    assert _choose(parquet, shuffle=True, num_workers=2) == "processes"
    assert _choose(parquet, shuffle=True) == "inline"
    assert _choose(parquet, transform=True, num_workers=2) == "processes"
    assert _choose(jsonl, num_workers=2) == "processes"
    assert _choose(parquet, executor="inline", num_workers=2) == "inline"
    assert _choose(jsonl, executor="processes", num_workers=1) == "processes"
    with pytest.raises(m5.ConfigError, match="a global shuffle"):
        _choose(parquet, shuffle=True, executor="threads")
    with pytest.raises(m5.ConfigError, match="no decode units"):
        _choose(jsonl, executor="threads")
