"""Transform pipelines against the Pillow reference, the JSON artifact, errors, text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import m5stream as m5
from m5stream import transforms as T
from m5stream.transforms.image import rrc_params
from tests.images import encode, photo, reference

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _normalize(u8_hwc: np.ndarray) -> np.ndarray:
    chw = u8_hwc.transpose(2, 0, 1).astype(np.float32)
    return (chw * np.float32(1 / 255) - np.array(MEAN, np.float32)[:, None, None]) * (
        np.float32(1) / np.array(STD, np.float32)
    )[:, None, None]


def _close(got: np.ndarray, want: np.ndarray, tol: float) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got.astype(np.float64) - want.astype(np.float64)).max() <= tol


def test_train_pipeline_matches_reference() -> None:
    data = encode(photo("chelsea"))  # 451 x 300
    tf = T.Compose(
        [
            T.DecodeImage("jpg"),
            T.RandomResizedCrop(224),
            T.RandomHorizontalFlip(),
            T.Normalize(MEAN, STD),
        ]
    )
    for index in range(12):
        sample = {"jpg": data, "__key__": "k", "__index__": index}
        out = T.apply_transform(tf, dict(sample), seed=5, epoch=1)["jpg"]
        assert out.shape == (3, 224, 224) and out.dtype == np.float32
        rng = T.sample_rng(5, 1, index)
        top, left, h, w = rrc_params(451, 300, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        flip = bool(rng.random() < 0.5)
        num = 1
        while num < 8 and not (w * num / 8 >= 224 and h * num / 8 >= 224):
            num *= 2
        want = reference(
            data, (left, top, left + w, top + h), (224, 224), scale_den=8 // num, flip=flip
        )
        _close(out, _normalize(want), 1 / 255 / 0.224 + 1e-6)  # <= 1 uint8 level


def test_eval_pipeline_is_resize_then_center_crop() -> None:
    data = encode(photo("astronaut").crop((0, 0, 512, 400)))
    tf = T.Compose([T.DecodeImage(dct_scaling=False), T.Resize(256), T.CenterCrop(224), T.ToCHW()])
    out = tf({"jpg": data, "__key__": "k", "__index__": 0})["jpg"]
    im = Image.open(__import__("io").BytesIO(data)).convert("RGB")
    full = im.resize((int(256 * 512 / 400), 256), Image.BILINEAR)
    left, top = round((full.width - 224) / 2.0), round((full.height - 224) / 2.0)
    want = np.asarray(full.crop((left, top, left + 224, top + 224))).transpose(2, 0, 1)
    d = np.abs(out.astype(int) - want.astype(int))
    assert d.max() <= 1 and d.mean() < 0.1
    # the borders too: the filter reads past the crop, as the full resize does
    assert np.abs(out[:, 0].astype(int) - want[:, 0].astype(int)).max() <= 1


def test_random_transforms_without_rng_take_the_eval_path() -> None:
    data = encode(photo("coffee"))  # 600 x 400, ratio 1.5 > 4/3
    tf = T.Compose([T.DecodeImage(), T.RandomResizedCrop(100), T.RandomHorizontalFlip(p=1.0)])
    a = tf({"jpg": data, "__key__": "k", "__index__": 0})["jpg"]
    assert rrc_params(600, 400, (0.08, 1), (3 / 4, 4 / 3), None) == (0, 33, 400, 533)
    # torchvision's fallback: the centred 533x400 box (left 33), no flip; decoded at 1/4
    want = reference(data, (33, 0, 566, 400), (100, 100), scale_den=4)
    assert np.abs(a.astype(int) - want.astype(int)).max() <= 1


def test_rrc_params_respect_scale_and_ratio() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = rrc_params(640, 427, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert top >= 0 and top + h <= 427 and left >= 0 and left + w <= 640
        assert 0.08 * 0.8 <= w * h / (640 * 427) <= 1.0


def test_png_goes_through_pillow_and_the_same_kernel() -> None:
    img = photo("rocket")
    tf = T.Compose([T.DecodeImage("png"), T.Resize((90, 120))])
    out = tf({"png": encode(img, "PNG"), "__key__": "k", "__index__": 0})["png"]
    want = np.asarray(img.resize((120, 90), Image.BILINEAR))
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "payload,match",
    [
        (b"hello", "cannot decode field 'jpg' as an image"),
        (b"\xff\xd8\xff\xe0garbage", "cannot decode field 'jpg' as JPEG"),
    ],
)
def test_bad_bytes_name_the_sample(payload: bytes, match: str) -> None:
    with pytest.raises(m5.CorruptData, match=match) as e:
        T.DecodeImage()({"jpg": payload, "__key__": "shard/img7", "__index__": 7})
    assert e.value.key == "shard/img7"


def test_truncated_jpeg_fails_when_made() -> None:
    data = encode(photo("astronaut"))
    sample = T.DecodeImage()({"jpg": data[: len(data) // 2], "__key__": "k9", "__index__": 9})
    with pytest.raises(m5.CorruptData, match="Premature end") as e:
        T.materialize(sample)
    assert e.value.key == "k9"


def test_decompression_bomb_guard() -> None:
    with pytest.raises(m5.CorruptData, match="max_pixels=1000"):
        T.DecodeImage(max_pixels=1000)(
            {"jpg": encode(photo("camera")), "__key__": "b", "__index__": 0}
        )
    with pytest.raises(m5.CorruptData, match="max_pixels=1000"):
        T.DecodeImage("png", max_pixels=1000)(
            {"png": encode(photo("camera"), "PNG"), "__key__": "b", "__index__": 0}
        )


def test_artifact_roundtrip(tmp_path: Path) -> None:
    tf = T.Compose(
        [
            T.DecodeImage("jpg", max_pixels=10**8),
            T.RandomResizedCrop(192, (0.2, 1)),
            T.RandomHorizontalFlip(0.3),
            T.Normalize(MEAN, STD, dtype="float16"),
            T.Tokenize("txt"),
            T.Cast({"cls": "int64"}),
            T.SelectColumns(["jpg", "cls"]),
        ]
    )
    text = tf.to_json()
    spec = json.loads(text)
    assert spec["format"] == "m5stream.transforms" and spec["version"] == 1
    assert [s["type"] for s in spec["pipeline"]][:2] == ["DecodeImage", "RandomResizedCrop"]
    again = T.from_json(text)
    assert again == tf and again.to_json() == text
    tf.save(tmp_path / "tf.json")
    assert T.load(tmp_path / "tf.json") == tf
    with pytest.raises(ValueError, match="version 2"):
        T.from_json(text.replace('"version": 1', '"version": 2'))
    with pytest.raises(ValueError, match="unknown transform type 'Sharpen'"):
        T.from_json(text.replace('"Cast"', '"Sharpen"'))
    with pytest.raises(TypeError, match="not an m5stream Transform"):
        T.Compose([lambda s: s])  # type: ignore[list-item]


def test_transforms_import_without_torch_or_loader() -> None:
    code = (
        "import sys, m5stream.transforms as T; "
        "bad = [m for m in ('torch', 'awscrt', 'pyarrow', 'm5stream.loader', "
        "'m5stream.workers') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_tokenize_bytes_and_hf_tokenizer(tmp_path: Path) -> None:
    s = T.Tokenize("txt")({"txt": "hé!".encode(), "__key__": "k", "__index__": 0})
    assert s["tokens"].tolist() == [104, 195, 169, 33, 257] and s["tokens"].dtype == np.int32
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tok.json"))
    t = T.Tokenize("txt", tokenizer_file=str(tmp_path / "tok.json"), eos_id=3)
    assert t({"txt": "hello big world", "__index__": 0})["tokens"].tolist() == [1, 0, 2, 3]
    again = T.from_json(T.Compose([t]).to_json())  # the tokenizer travels inside the artifact
    assert again({"txt": "world hello", "__index__": 0})["tokens"].tolist() == [2, 1, 3]


def test_pack_tokens_exact() -> None:
    samples = [
        {"tokens": np.arange(1, n + 1, dtype=np.int32), "__index__": i, "__key__": f"d{i}"}
        for i, n in enumerate([3, 6, 1])
    ]
    out = T.PackTokens(4, pad_id=-1)(samples)
    assert out["input_ids"].tolist() == [[1, 2, 3, 1], [2, 3, 4, 5], [6, 1, -1, -1]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 0], [1, 2, 3, 4], [5, 0, 0, 0]]
    assert out["segment_ids"].tolist() == [[1, 1, 1, 2], [2, 2, 2, 2], [2, 3, 0, 0]]
    assert out["__index__"].tolist() == [0, 1, 2] and out["doc_lengths"].tolist() == [3, 6, 1]


def test_cast_and_select() -> None:
    s = {"label": b"7", "score": 0.5, "x": 1, "__key__": "k", "__index__": 3}
    s = T.Cast({"label": "int64", "score": "float16"})(s)
    assert s["label"] == 7 and isinstance(s["label"], np.int64) and s["score"].dtype == np.float16
    assert set(T.SelectColumns(["label"])(s)) == {"label", "__key__", "__index__"}
    with pytest.raises(m5.CorruptData, match="cannot cast field 'x'"):
        T.Cast({"x": "int64"})({"x": b"seven", "__key__": "k"})
    with pytest.raises(m5.CorruptData, match="lacks column"):
        T.SelectColumns(["nope"])(s)
