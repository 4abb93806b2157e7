import numpy as np

def values_from_offsets(
    offsets: np.ndarray, data: np.ndarray | bytes, text: bool = True
) -> list[str] | list[bytes]: ...
