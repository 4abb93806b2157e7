"""Text and tabular transforms: tokenisation, packing, column selection and casting.

``Tokenize`` is per sample (byte-level by default, or a Hugging Face ``tokenizers`` JSON
embedded in the artifact so serving needs no extra file). ``PackTokens`` is a *batch*
transform (``Loader(batch_transform=...)``): it packs the token sequences of one batch, in
order, into rows of ``seq_len`` and never reaches into the next batch, so a resumed loader
produces exactly the rows an uninterrupted one would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptData
from .base import Sample, Transform

__all__ = ["Cast", "PackTokens", "SelectColumns", "Tokenize"]

BYTE_BOS, BYTE_EOS = 256, 257


class Tokenize(Transform):
    """``sample[out_key] = int32 token ids of sample[key]``.

    Byte-level by default: the UTF-8 bytes (ids 0-255) followed by EOS=257 when ``add_eos``.
    With ``tokenizer_file`` (a ``tokenizer.json``) the Hugging Face ``tokenizers`` library
    encodes; the file's content is embedded in the artifact (``tokenizer_json``).
    """

    def __init__(
        self,
        key: str = "txt",
        out_key: str = "tokens",
        *,
        add_eos: bool = True,
        tokenizer_file: str | None = None,
        tokenizer_json: str | None = None,
        eos_id: int | None = None,
    ) -> None:
        self.key = key
        self.out_key = out_key
        self.add_eos = bool(add_eos)
        if tokenizer_file is not None:
            tokenizer_json = Path(tokenizer_file).read_text()
        self.tokenizer_json = tokenizer_json
        self.eos_id = eos_id
        self._tok: Any = None

    def args(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "out_key": self.out_key,
            "add_eos": self.add_eos,
            "tokenizer_json": self.tokenizer_json,
            "eos_id": self.eos_id,
        }

    def _tokenizer(self) -> Any:
        if self._tok is None:
            try:
                from tokenizers import Tokenizer  # optional: the [text] extra
            except ImportError:
                raise ImportError(
                    "Tokenize(tokenizer_file=...) needs the 'tokenizers' "
                    "package (pip install 'm5stream[text]')"
                ) from None
            assert self.tokenizer_json is not None
            self._tok = Tokenizer.from_str(self.tokenizer_json)
        return self._tok

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_tok"] = None  # rebuilt lazily in each worker
        return d

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        v = sample.get(self.key)
        if isinstance(v, (bytes, bytearray)):
            try:
                text = bytes(v).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CorruptData(
                    f"field {self.key!r} is not UTF-8: {exc}", key=sample.get("__key__")
                ) from None
        elif isinstance(v, str):
            text = v
        else:
            raise CorruptData(
                f"field {self.key!r} is {type(v).__name__}, not text", key=sample.get("__key__")
            )
        eos: int | None
        if self.tokenizer_json is None:
            ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
            eos = BYTE_EOS if self.eos_id is None else self.eos_id
        else:
            ids = np.asarray(self._tokenizer().encode(text).ids, dtype=np.int32)
            eos = self.eos_id
        if self.add_eos and eos is not None:
            ids = np.append(ids, np.int32(eos))
        sample[self.out_key] = ids
        return sample


class PackTokens(Transform):
    """Pack a batch's token sequences into ``[rows, seq_len]`` (a batch transform).

    Output fields: ``input_ids`` (``pad_id`` after the last token), ``position_ids`` (position
    inside its document, restarting at every document start and continuing where a document
    runs over into the next row; 0 on padding), ``segment_ids`` (1 + the document's number in
    the batch; 0 on padding), ``__index__``/``__key__`` of the documents in packing order, and
    ``doc_lengths``. Documents are taken in batch order and split across rows where needed; the
    last row is padded; nothing crosses into the next batch.
    """

    batch_level = True

    def __init__(self, seq_len: int, key: str = "tokens", pad_id: int = 0) -> None:
        if seq_len <= 0:
            raise ValueError("seq_len must be positive")
        self.seq_len = int(seq_len)
        self.key = key
        self.pad_id = int(pad_id)

    def args(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "key": self.key, "pad_id": self.pad_id}

    def __call__(  # type: ignore[override]  # a batch transform: takes the list of samples
        self, samples: list[Sample], rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        seqs = [np.asarray(s[self.key], dtype=np.int32).reshape(-1) for s in samples]
        lengths = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs))
        total = int(lengths.sum())
        rows = max(1, -(-total // self.seq_len)) if seqs else 0
        n = rows * self.seq_len
        ids = np.full(n, self.pad_id, dtype=np.int32)
        pos = np.zeros(n, dtype=np.int32)
        seg = np.zeros(n, dtype=np.int32)
        if total:
            ids[:total] = np.concatenate(seqs)
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            doc = np.repeat(np.arange(len(seqs), dtype=np.int64), lengths)
            pos[:total] = np.arange(total) - starts[doc]
            seg[:total] = doc + 1
        shape = (rows, self.seq_len)
        return {
            "input_ids": ids.reshape(shape),
            "position_ids": pos.reshape(shape),
            "segment_ids": seg.reshape(shape),
            "doc_lengths": lengths,
            "__index__": np.asarray([s["__index__"] for s in samples], dtype=np.int64),
            "__key__": [s["__key__"] for s in samples],
        }


class SelectColumns(Transform):
    """Keep only ``columns`` (plus ``__key__``/``__index__``); a missing one is an error."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = list(columns)

    def args(self) -> dict[str, Any]:
        return {"columns": self.columns}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        missing = [c for c in self.columns if c not in sample]
        if missing:
            raise CorruptData(f"sample lacks column(s) {missing}", key=sample.get("__key__"))
        out = {c: sample[c] for c in self.columns}
        for k in ("__key__", "__index__"):
            if k in sample:
                out[k] = sample[k]
        return out


class Cast(Transform):
    """Cast fields to numpy dtypes, e.g. ``Cast({"label": "int64", "score": "float16"})``;
    ``"str"`` decodes bytes as UTF-8. Values that do not convert are a CorruptData error."""

    def __init__(self, dtypes: dict[str, str]) -> None:
        for dt in dtypes.values():
            if dt != "str":
                np.dtype(dt)  # validate now, not in a worker
        self.dtypes = dict(dtypes)

    def args(self) -> dict[str, Any]:
        return {"dtypes": self.dtypes}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        for name, dt in self.dtypes.items():
            v = sample.get(name)
            try:
                if dt == "str":
                    sample[name] = v.decode("utf-8") if isinstance(v, bytes) else str(v)
                else:
                    if isinstance(v, bytes):
                        v = v.decode("utf-8")
                    arr = np.asarray(v).astype(dt)
                    sample[name] = arr[()] if arr.ndim == 0 else arr
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                raise CorruptData(
                    f"cannot cast field {name!r}={v!r:.40} to {dt}: {exc}",
                    key=sample.get("__key__"),
                ) from None
        return sample
