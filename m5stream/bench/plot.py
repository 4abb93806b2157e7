"""``m5stream bench --plot PATH.png``: throughput over time and the stage breakdown.

Needs matplotlib (``pip install 'm5stream[plot]'``); drawn off-screen (Agg backend).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["plot"]


def plot(result: dict[str, Any], path: str) -> None:
    try:
        import matplotlib  # optional: the [plot] extra, only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'm5stream[plot]'") from None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    tl = result["timeline"]
    if tl:
        ax1.plot([t for t, _ in tl], [r for _, r in tl], marker=".", label="m5stream")
    for name, peer in result.get("compare", {}).items():
        if peer["status"] == "ok":
            ax1.axhline(peer["samples_per_s"], linestyle="--", label=f"{name} (mean)")
    ax1.set_xlabel("seconds after the first batch")
    ax1.set_ylabel("samples/s")
    ax1.set_title(
        f"{result['config']['transform']}, batch {result['config']['batch_size']}, "
        f"{result['config']['workers']} workers"
    )
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="lower right")
    st = result["stages"]
    names = list(st)
    ax2.barh(names, [st[k] for k in names], color="tab:orange")
    ax2.invert_yaxis()
    ax2.set_xlabel("seconds (worker stages summed over workers)")
    b = result["bottleneck"]
    ax2.set_title(f"bottleneck: {b['stage']}")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
