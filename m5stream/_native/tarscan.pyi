from typing import Any

import numpy as np

def scan(buf: Any) -> tuple[list[bytes], np.ndarray, np.ndarray]: ...
