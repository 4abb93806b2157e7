"""The ``m5stream bench`` result: its JSON schema, the stage breakdown and the bottleneck.

JSON schema ``m5stream.bench/1`` (``--json PATH``; keys are stable within a major version,
new keys may be added):

``schema`` (``"m5stream.bench/1"``), ``m5stream_version``, ``created`` (UTC ISO time),
``interrupted`` (Ctrl-C ended the run early), ``environment`` (``python``, ``numpy``,
``pil``: which Pillow build ran, ``cpus``),
``source`` (``uri``, ``format``, ``shards``, ``samples``, ``bytes``),
``config`` (``transform``, ``batch_size``, ``workers``, ``executor``: the one that ran,
``batches``, ``seconds``, ``epochs``: the budget, ``null`` where not set),
``result`` (``batches``, ``samples``, ``bytes``, ``seconds``: timed part, after the first
batch; ``samples_per_s``, ``mb_per_s``, ``skipped``: samples dropped as bad,
``worker_restarts``: dead workers replaced, ``poison_kills``: those a poison-sample hunt
cost),
``stages`` (seconds; ``listing``, ``first_batch``: from the start of iteration, after
``Loader(...)``; ``fetch``, ``decode``, ``transform``, ``collate``, ``handoff``,
``trainer_wait``; the worker stages are summed over workers),
``startup`` (start-up as a user meets it, timed from just before ``Loader(...)`` is made; the
dataset listing is before that and apart, ``stages.listing``:
``first_batch_from_loader_s``: seconds to the first batch in hand (``Loader(...)`` included),
``loader_init_s``: of which ``Loader(...)`` itself; ``epochs``: each complete epoch,
``{"end_from_loader_s", "batches", "samples"}`` (its first batch included);
``first_epoch_samples_per_s``: epoch 1's samples over its ``end_from_loader_s`` (start-up
included); ``steady_samples_per_s``: the median of the later complete epochs' samples/s, each
from the previous epoch's end to its own; ``first_epoch_ratio``: the first over the steady,
``null`` with fewer than 2 complete epochs, when ``first_epoch_ratio_note`` says why (else
``null``); ``startup_batches``: batches made in this process while the worker processes
started, ``null`` where the loader does not report it),
``workers`` (``count``, ``utilisation``: busy share of the workers' time in the timed part),
``memory`` (``peak_tree_pss_bytes``, ``peak_tree_rss_bytes``: this process plus workers),
``s3`` (requests per operation and ``bytes``, when the source is on S3),
``sources`` (a mixture only: per source ``samples``, ``bytes``, ``read_s``, ``transform_s``,
``share``: its realised part of the samples, ``weight``: its weight at the last step),
``bottleneck`` (``stage``: fetch | decode | transform | collate | handoff | trainer,
``reason``, ``suggestion``),
``timeline`` (``[seconds, samples/s]`` pairs), and
``compare`` (per peer: ``{"status": "ok", "samples_per_s", "mb_per_s", "first_batch_s",
"first_batch_from_loader_s", "first_epoch_ratio", "samples", "seconds", "workers",
"batch_size", "ratio"}`` where ``first_batch_s`` is from the start of iteration, the next two
as in ``startup`` (from just before the peer's loader is made), and ``ratio`` is m5stream's
samples/s over the peer's, or ``{"status": "skipped", "reason"}`` /
``{"status": "failed", "error"}``).
"""

from __future__ import annotations

from typing import Any

from ..records.attribution import SUGGESTIONS, bottleneck, stages

__all__ = ["SCHEMA", "SUGGESTIONS", "bottleneck", "format_report", "stages"]

SCHEMA = "m5stream.bench/1"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def _startup_lines(su: dict[str, Any], listing: float) -> list[str]:
    """The start-up figures: time to the first batch, and the first epoch against the rest."""
    if su.get("first_batch_from_loader_s") is None:
        return ["start-up    no batch delivered"]
    lines = [
        f"start-up    first batch {su['first_batch_from_loader_s']:.3f}s after Loader(...) "
        f"(which took {su['loader_init_s']:.3f}s; listing {listing:.3f}s apart, before it)"
    ]
    n = len(su["epochs"])
    if su["first_epoch_ratio"] is not None:
        later = "epoch 2" if n == 2 else f"epochs 2-{n}, median"
        lines.append(
            f"            first epoch {su['first_epoch_samples_per_s']:,.0f} samples/s with "
            f"start-up, steady {su['steady_samples_per_s']:,.0f} ({later}): "
            f"first-epoch ratio {su['first_epoch_ratio']:.2f}"
        )
    else:
        note = su["first_epoch_ratio_note"]
        if note.startswith("run ended within"):
            note += "; use --epochs 2+ or a longer --batches/--seconds"
        lines.append(f"            first-epoch ratio: n/a ({note})")
    return lines


def format_report(r: dict[str, Any]) -> str:
    src, res, st = r["source"], r["result"], r["stages"]
    cfg = r["config"]
    su = r.get("startup") or {}
    made_inline = su.get("startup_batches")
    lines = [
        f"source      {src['uri']}  ({src['format']}, {src['shards']} shards, "
        f"{src['samples']:,} samples, {_mb(src['bytes'])})",
        f"job         transform {cfg['transform']}, batch {cfg['batch_size']}, "
        f"{cfg['workers']} workers, {cfg.get('executor', 'auto')} executor"
        + (f" ({made_inline} batches made inline while the workers started)" if made_inline else "")
        + f"; {r['environment']['pil']}",
        f"throughput  {res['samples_per_s']:,.0f} samples/s, {res['mb_per_s']:,.1f} MB/s "
        f"({res['samples']:,} samples in {res['seconds']:.2f}s after the first batch"
        + (", interrupted" if r["interrupted"] else "")
        + ")",
        *(_startup_lines(su, st["listing"]) if su else []),
        "stages      "
        + ", ".join(
            f"{k.replace('_', ' ')} {v:.3f}s"
            for k, v in st.items()
            if k in ("listing", "first_batch")
        ),
        "            "
        + ", ".join(
            f"{k.replace('_', ' ')} {v:.2f}s"
            for k, v in st.items()
            if k not in ("listing", "first_batch")
        )
        + "  (worker stages summed over workers)",
        f"workers     {r['workers']['count']} busy {r['workers']['utilisation']:.0%}; peak memory "
        f"{_mb(r['memory']['peak_tree_pss_bytes'])} PSS, {_mb(r['memory']['peak_tree_rss_bytes'])}"
        " RSS (process tree)",
    ]
    if r.get("s3"):
        lines.append("s3          " + ", ".join(f"{k} {v:,}" for k, v in r["s3"].items()))
    for i, (name, p) in enumerate(r.get("sources", {}).items()):
        lines.append(
            ("sources     " if i == 0 else "            ")
            + f"{name}: {p['share']:.1%} of samples (weight {p['weight']:.1%}), "
            f"{p['samples']:,} samples, {_mb(p['bytes'])}, read {p['read_s']:.2f}s, "
            f"transform {p['transform_s']:.2f}s"
        )
    if res.get("skipped"):
        lines.append(f"skipped     {res['skipped']} bad samples")
    if res.get("worker_restarts"):
        line = f"restarts    {res['worker_restarts']} dead worker(s) replaced"
        if res.get("poison_kills"):
            line += f", {res['poison_kills']} of them finding poison samples"
        lines.append(line)
    b = r["bottleneck"]
    lines.append(f"bottleneck  {b['stage']}: {b['reason']}")
    if b["suggestion"]:
        lines.append(f"            -> {b['suggestion']}")
    for name, peer in r.get("compare", {}).items():
        if peer["status"] == "ok":
            lines.append(
                f"vs {name:<16} {peer['samples_per_s']:,.0f} samples/s -> m5stream is "
                f"{peer['ratio']:.2f}x"
            )
        else:
            why = peer.get("reason") or peer.get("error")
            lines.append(f"vs {name:<16} {peer['status']}: {why}")
    return "\n".join(lines)
