"""The fused native image kernels against the Pillow reference (tests/images.py).

Bound: decode at the same DCT scale is bit-exact (same libjpeg-turbo IDCT); the resampler
follows Pillow's fixed-point bilinear; we allow max |delta| <= 1 on uint8 (pillow-simd, which
may be the installed Pillow, rounds its SIMD path differently) and a mean below 0.1;
the decode alone is checked bit-exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from m5stream._native import imgops
from tests.images import encode, photo, reference


def _check(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    d = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert d.max() <= 1, f"max |delta| {d.max()}"
    assert d.mean() < 0.1, f"mean |delta| {d.mean():.4f}"


def _m5(data: bytes, box: tuple, size: tuple[int, int], **kw: object) -> tuple[np.ndarray, int]:
    out = np.empty((size[1], size[0], 3), np.uint8)
    num = imgops.decode_jpeg_into(data, out, box, size[0], size[1], **kw)
    return out, num


CASES = [
    ("astronaut", {}, (0, 0, 512, 512), (512, 512)),  # identity: decode only
    ("astronaut", {"quality": 75}, (10, 20, 310, 220), (224, 224)),
    ("coffee", {"subsampling": 0}, (101, 57, 503, 391), (96, 80)),  # 4:4:4
    ("coffee", {"subsampling": 1}, (250, 100, 400, 300), (30, 40)),  # 4:2:2
    ("chelsea", {"progressive": True}, (33.5, 40.25, 400.75, 280.5), (100, 120)),
    ("rocket", {}, (0, 0, 640, 427), (640, 427)),  # odd height
    ("rocket", {"quality": 60}, (17, 3, 640, 427), (317, 211)),
]


@pytest.mark.parametrize("name,opts,box,size", CASES)
@pytest.mark.parametrize("dct", [False, True])
def test_decode_matches_pillow(name: str, opts: dict, box: tuple, size: tuple, dct: bool) -> None:
    data = encode(photo(name), **opts)
    got, num = _m5(data, box, size, dct_scaling=dct)
    if not dct:
        assert num == 8
    _check(got, reference(data, box, size, scale_den=8 // num))


def test_dct_scaling_picks_the_smallest_covering_scale() -> None:
    data = encode(photo("astronaut"))  # 512 x 512
    assert _m5(data, (0, 0, 512, 512), (64, 64))[1] == 1
    assert _m5(data, (0, 0, 512, 512), (65, 64))[1] == 2
    assert _m5(data, (0, 0, 256, 256), (64, 64))[1] == 2
    assert _m5(data, (0, 0, 512, 512), (300, 300))[1] == 8


def test_grayscale_and_cmyk() -> None:
    gray = encode(photo("camera").convert("L"))
    got, _ = _m5(gray, (5, 5, 500, 400), (123, 77), dct_scaling=False)
    _check(got, reference(gray, (5, 5, 500, 400), (123, 77)))
    assert (got[..., 0] == got[..., 1]).all()
    cmyk = encode(photo("coffee").convert("CMYK"))
    got, _ = _m5(cmyk, (0, 0, 600, 400), (150, 100), dct_scaling=False)
    _check(got, reference(cmyk, (0, 0, 600, 400), (150, 100)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(orientation: int) -> None:
    img = photo("coffee").crop((0, 0, 600, 350))  # not square, so rotations show
    data = encode(img, orientation=orientation)
    w, h, *_, o = imgops.jpeg_info(data)
    assert (w, h, o) == (600, 350, orientation)
    dw, dh = (350, 600) if orientation >= 5 else (600, 350)
    box = (dw * 0.1, dh * 0.2, dw * 0.9, dh * 0.7)
    got, num = _m5(data, box, (120, 90))
    _check(got, reference(data, box, (120, 90), scale_den=8 // num))


def test_flip_and_output_layouts() -> None:
    data = encode(photo("chelsea"))
    box, size = (20, 30, 420, 280), (64, 48)
    hwc, _ = _m5(data, box, size, dct_scaling=False)
    flipped, _ = _m5(data, box, size, dct_scaling=False, flip=True)
    assert np.array_equal(flipped, hwc[:, ::-1])
    _check(flipped, reference(data, box, size, flip=True))
    chw = np.empty((3, 48, 64), np.uint8)
    imgops.decode_jpeg_into(data, chw, box, 64, 48, mode="u8_chw", dct_scaling=False)
    assert np.array_equal(chw, hwc.transpose(2, 0, 1))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expect = (
        chw.astype(np.float32) * np.float32(1 / 255) - np.array(mean, np.float32)[:, None, None]
    ) * (np.float32(1) / np.array(std, np.float32))[:, None, None]
    for mode, dtype in (("f32_chw", np.float32), ("f16_chw", np.float16)):
        out = np.empty((3, 48, 64), dtype)
        imgops.decode_jpeg_into(
            data, out, box, 64, 48, mode=mode, mean=mean, std=std, dct_scaling=False
        )
        assert np.array_equal(out, expect.astype(dtype))


def test_resample_of_decoded_pixels_matches_pillow() -> None:
    img = photo("astronaut").crop((0, 0, 301, 257))
    arr = np.ascontiguousarray(np.asarray(img))
    for box, size in [
        ((0, 0, 301, 257), (100, 90)),
        ((3.5, 7.25, 290.5, 250), (224, 224)),
        ((50, 60, 70, 80), (200, 150)),
    ]:  # the last one upsamples
        out = np.empty((size[1], size[0], 3), np.uint8)
        imgops.resample_into(arr, out, box, *size)
        _check(out, reference(encode(img, "PNG"), box, size))


@pytest.mark.parametrize("bad", [b"", b"\xff\xd8\xff", b"not an image at all"])
def test_broken_inputs_raise_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        imgops.jpeg_info(bad)


def test_truncated_jpeg_is_an_error_not_grey_pixels() -> None:
    data = encode(photo("astronaut"))
    cut = data[: len(data) * 6 // 10]
    imgops.jpeg_info(cut)  # the header is intact
    with pytest.raises(ValueError, match="Premature end"):
        _m5(cut, (0, 0, 512, 512), (512, 512), dct_scaling=False)
    prog = encode(photo("astronaut"), progressive=True)
    with pytest.raises(ValueError):
        _m5(prog[: len(prog) // 2], (0, 0, 512, 512), (64, 64))


def test_pixel_limit() -> None:
    data = encode(photo("astronaut"))
    with pytest.raises(ValueError, match="exceeds the limit"):
        _m5(data, (0, 0, 512, 512), (10, 10), max_pixels=512 * 511)


def test_box_outside_image() -> None:
    data = encode(Image.new("RGB", (40, 30)))
    with pytest.raises(ValueError, match="outside"):
        _m5(data, (0, 0, 41, 30), (10, 10))


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_region_decode_is_bit_exact_with_full_decode(subsampling: int) -> None:
    # cropped columns/skipped rows must give the same pixels as decoding everything
    data = encode(photo("coffee"), subsampling=subsampling, quality=80)
    full, _ = _m5(data, (0, 0, 600, 400), (600, 400), dct_scaling=False)
    for box in [(0, 0, 37, 29), (101, 57, 333, 391), (250, 100, 400, 300), (577, 371, 600, 400)]:
        x0, y0, x1, y1 = box
        part, _ = _m5(data, box, (x1 - x0, y1 - y0), dct_scaling=False)
        assert np.array_equal(part, full[y0:y1, x0:x1]), box
