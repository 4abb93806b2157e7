"""The long fuzz run: the properties of ``tests/unit/test_fuzz_readers.py`` with random seeds,
for as long as it is given, round robin over the targets.

Each input runs in the fork server of ``tests/fuzzing.py`` (a child per input: a segfault,
a hang past ``--timeout`` or a runaway allocation is a finding, not the end of the run). A
finding is shrunk by hypothesis to a minimal input, written to ``--out`` as
``TARGET-HASH.bin`` with ``TARGET-HASH.txt`` saying what it broke, and the run goes on.
Exit status 1 when anything was found. Example::

    .venv/bin/python scripts/fuzz.py --minutes 30
    .venv/bin/python scripts/fuzz.py --seconds 120 --targets tar,tarscan --seed 7
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import HypothesisWarning

from tests.fuzzing import INPUTS, NAMES, Sandbox, violation

#: examples per round: small enough that a round robin reaches every target soon
ROUND = 100


def fuzz_round(
    sb: Sandbox, target: str, seed_value: int, found: dict[str, tuple[bytes, str]]
) -> int:
    """One round of ``ROUND`` examples (the number run is returned); the minimal input of a
    failure goes into ``found`` as ``name -> (input, what it broke)``."""
    ran = 0
    last_bad: list[tuple[bytes, str]] = []

    @seed(seed_value)
    @settings(
        max_examples=ROUND,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(data=INPUTS[target])
    def prop(data: bytes) -> None:
        nonlocal ran
        ran += 1
        problem = violation(sb.run(target, data), NAMES[target])
        if problem is not None:
            last_bad.append((data, problem))
            raise AssertionError(problem)

    try:
        prop()
    except AssertionError:
        pass  # hypothesis replays the minimal example last: it is last_bad[-1]
    if last_bad:
        data, problem = last_bad[-1]
        found[f"{target}-{hashlib.sha256(data).hexdigest()[:12]}"] = (data, problem)
    return ran


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float)
    g.add_argument("--seconds", type=float, help="total budget (default 300)")
    p.add_argument("--targets", default=",".join(t for t in INPUTS))
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per input")
    p.add_argument("--out", default="fuzz-findings")
    a = p.parse_args(argv)
    # reports of 40 KB inputs: the minimal input is written to --out instead
    warnings.filterwarnings("ignore", category=HypothesisWarning)
    budget = a.minutes * 60 if a.minutes is not None else (a.seconds or 300.0)
    targets = [t for t in a.targets.split(",") if t]
    unknown = set(targets) - set(INPUTS)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}; known: {sorted(INPUTS)}")
    found: dict[str, tuple[bytes, str]] = {}
    counts = dict.fromkeys(targets, 0)
    t0 = time.monotonic()
    r = 0
    with Sandbox(timeout=a.timeout) as sb:
        while time.monotonic() - t0 < budget:
            target = targets[r % len(targets)]
            counts[target] += fuzz_round(sb, target, a.seed + r, found)
            r += 1
    out = Path(a.out)
    for name, (data, problem) in found.items():
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.bin").write_bytes(data)
        (out / f"{name}.txt").write_text(problem + "\n")
    took = time.monotonic() - t0
    total = sum(counts.values())
    print(
        f"fuzz: {total} inputs in {took:.0f} s (seed {a.seed}): "
        + ", ".join(f"{t} {n}" for t, n in counts.items())
    )
    for name, (_, problem) in found.items():
        print(f"FOUND {name}: {problem.splitlines()[0][:300]} (input in {out}/{name}.bin)")
    if not found:
        print("fuzz: nothing found")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
