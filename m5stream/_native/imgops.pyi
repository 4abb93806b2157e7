from typing import Any

def jpeg_info(data: Any) -> tuple[int, int, int, int, int, int]: ...
def decode_jpeg_into(
    data: Any,
    out: Any,
    box: Any,
    out_w: int,
    out_h: int,
    *,
    flip: bool = ...,
    mode: str = ...,
    mean: Any = ...,
    std: Any = ...,
    max_pixels: int = ...,
    orientation: int = ...,
    dct_scaling: bool = ...,
    clip: Any = ...,
    fast: bool = ...,
) -> int: ...
def resample_into(
    image: Any,
    out: Any,
    box: Any,
    out_w: int,
    out_h: int,
    *,
    flip: bool = ...,
    mode: str = ...,
    mean: Any = ...,
    std: Any = ...,
    clip: Any = ...,
) -> None: ...
