"""Text pipeline benchmark: tokenize + pack, m5 transforms vs a plain Python implementation.

Corpus: 20,000 documents of up to 2,000 characters, generated deterministically (seeded
random words of 1-12 letters, some of them accented). Both sides produce the same rows of
``seq_len`` 2,048 (byte-level tokens + EOS, documents packed in order within each batch of 256
documents, position ids restarting at document starts); the script checks that the outputs
are identical before timing.

    python benchmarks/text_pipeline.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import environment, median

from m5stream import transforms as T

SEQ, BATCH, EOS = 2048, 256, 257


def corpus(n: int = 20_000) -> list[str]:
    rng = np.random.default_rng(7)
    letters = list("abcdefghijklmnopqrstuvwxyzéüß")
    words = ["".join(rng.choice(letters, int(rng.integers(1, 13)))) for _ in range(5000)]
    docs = []
    for _ in range(n):
        k = int(rng.integers(10, 400))
        docs.append(" ".join(words[int(i)] for i in rng.integers(0, len(words), k))[:2000])
    return docs


def plain_python(docs: list[str]) -> list[tuple[list[list[int]], list[list[int]]]]:
    """What one writes without m5: list-based tokenize and pack, batch by batch."""
    out = []
    for b in range(0, len(docs), BATCH):
        ids: list[int] = []
        pos: list[int] = []
        for d in docs[b : b + BATCH]:
            toks = [*d.encode("utf-8"), EOS]
            ids.extend(toks)
            pos.extend(range(len(toks)))
        rows = -(-len(ids) // SEQ)
        ids += [0] * (rows * SEQ - len(ids))
        pos += [0] * (rows * SEQ - len(pos))
        out.append(
            (
                [ids[r * SEQ : (r + 1) * SEQ] for r in range(rows)],
                [pos[r * SEQ : (r + 1) * SEQ] for r in range(rows)],
            )
        )
    return out


def m5_pipeline(docs: list[str]) -> list[dict[str, np.ndarray]]:
    tok, pack = T.Tokenize("txt"), T.PackTokens(SEQ)
    out = []
    for b in range(0, len(docs), BATCH):
        samples = [
            tok({"txt": d, "__index__": b + i, "__key__": ""})
            for i, d in enumerate(docs[b : b + BATCH])
        ]
        out.append(pack(samples))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    docs = corpus()
    ref, got = plain_python(docs[: BATCH * 4]), m5_pipeline(docs[: BATCH * 4])
    for (ids, pos), g in zip(ref, got):  # same output, or the comparison means nothing
        assert g["input_ids"].tolist() == ids and g["position_ids"].tolist() == pos
    tokens = sum(len(d.encode()) + 1 for d in docs)
    rates: dict[str, list[float]] = {"m5": [], "python": []}
    for _ in range(a.repeats):
        for name, fn in (("m5", m5_pipeline), ("python", plain_python)):
            t0 = time.perf_counter()
            fn(docs)
            rates[name].append(tokens / (time.perf_counter() - t0))
    m, p = median(rates["m5"]), median(rates["python"])
    print(
        f"# text: tokenize (byte-level) + pack into {SEQ}-token rows, {len(docs)} docs, "
        f"{tokens / 1e6:.1f} M tokens, one core, median of {a.repeats}; {environment()}"
    )
    print(
        f"m5 transforms {m / 1e6:6.2f} M tokens/s   plain Python {p / 1e6:6.2f} M tokens/s   "
        f"ratio {m / p:.1f}x"
    )


if __name__ == "__main__":
    main()
