"""The package namespace: submodules reachable as attributes of ``import m5stream``, lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_submodules_are_lazy_attributes() -> None:
    out = _run(
        "import sys, m5stream as m5\n"
        "assert 'torch' not in sys.modules, 'import m5stream imported torch'\n"
        "assert callable(m5.checkpoint.save) and callable(m5.checkpoint.latest)\n"
        "assert m5.transforms.Compose is not None\n"
        "assert 'torch' not in sys.modules, 'm5stream.checkpoint imported torch'\n"
        "assert {'checkpoint', 'torch', 'transforms'} <= set(dir(m5))\n"
        "ids = m5.torch.IterableDataset\n"
        "assert 'torch' in sys.modules and ids.__module__ == 'm5stream.torch'\n"
        "import m5stream.torch\n"
        "assert m5.torch is m5stream.torch\n"
        "assert m5.checkpoint is sys.modules['m5stream.checkpoint']\n"
        "print('ok')"
    )
    assert out == "ok"


def test_star_import_does_not_import_torch() -> None:
    out = _run(
        "import sys\n"
        "from m5stream import *\n"
        "assert callable(checkpoint.save) and callable(Loader)\n"
        "print(sorted(m for m in ('torch', 'm5stream.torch') if m in sys.modules))"
    )
    assert out == "[]"


def test_unknown_attribute_is_attribute_error() -> None:
    out = _run(
        "import m5stream as m5\ntry:\n    m5.nope\nexcept AttributeError as e:\n    print(e)"
    )
    assert out == "module 'm5stream' has no attribute 'nope'"
