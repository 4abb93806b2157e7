"""Train/serve parity: the eval pipeline through the Loader (workers, fused writes into
shared-memory slots) and the saved artifact in a separate serving process give bit-identical
tensors for the same sample."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from m5stream import transforms as T
from tests.images import make_image_tar

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    tf = T.Compose(
        [
            T.DecodeImage("jpg"),
            T.Resize(256),
            T.CenterCrop(224),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    tf.save(tmp_path / "preprocess.json")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "serve.py"),
            "--artifact",
            str(tmp_path / "preprocess.json"),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), (line, proc.stderr.read())
        yield tf, f"http://{line.split()[-1]}"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _post(url: str, body: bytes) -> np.ndarray:
    req = urllib.request.Request(url + "/preprocess", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return np.load(io.BytesIO(r.read()), allow_pickle=False)


def test_loader_and_serving_handler_are_bit_identical(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tf, url = server
    ds = m5.dataset(make_image_tar(tmp_path / "d", shards=2, per_shard=6))
    # the pipeline the server runs is the one loaded from the artifact, in another process
    loaded = T.load(tmp_path / "preprocess.json")
    assert loaded == tf
    with m5.Loader(
        ds, 4, transform=loaded, num_workers=2, shuffle=True, seed=4, output="numpy", copy=True
    ) as lo:
        seen = 0
        for batch in lo:
            for row, i in zip(batch["jpg"], batch["__index__"].tolist()):
                served = _post(url, ds[i]["jpg"])
                assert served.dtype == np.float32 and served.shape == (3, 224, 224)
                assert np.array_equal(row, served), f"sample {i} differs"
                seen += 1
    assert seen == 12
    with pytest.raises(urllib.error.HTTPError) as e:
        _post(url, b"not an image")
    assert e.value.code == 400 and b"CorruptData" in e.value.read()
