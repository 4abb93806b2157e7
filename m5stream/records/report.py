"""``m5stream report``: one self-contained static HTML page of recorded runs.

The page holds a sortable table of runs (click a column header; click a row to choose the
run), for the chosen run its throughput over time, its stage breakdown and, for a mixture,
the per-source proportions per interval against the weights; and across runs, input-bound %
against throughput. Plots are inline SVG drawn here in Python; the only script is a small
embedded one that sorts the table and switches runs. Nothing is fetched from the network:
no CDN, fonts, images or styles from anywhere but the file itself.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..stats import Stats
from .store import RunStore
from .urls import redact

__all__ = ["build_report", "write_report"]

_COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_STAGE_COLORS = dict(zip(Stats.STAGES, _COLORS))

#: (header, column or callable, kind) of the runs table; kind: "num" sorts as a number
_TABLE: list[tuple[str, str, str]] = [
    ("run", "run_id", "text"),
    ("name", "run_name", "text"),
    ("kind", "kind", "text"),
    ("started (UTC)", "started_at", "text"),
    ("host", "host", "text"),
    ("rank", "rank", "num"),
    ("executor", "executor", "text"),
    ("workers", "num_workers", "num"),
    ("batch", "batch_size", "num"),
    ("samples", "samples", "num"),
    ("samples/s", "samples_per_s", "num"),
    ("MB/s", "mb_per_s", "num"),
    ("input-bound %", "input_bound_pct", "num"),
    ("bottleneck", "bottleneck", "text"),
    ("skipped", "skipped", "num"),
    ("restarts", "worker_restarts", "num"),
    ("S3 req", "s3_requests", "num"),
    ("retries", "s3_retries", "num"),
    ("status", "status", "text"),
]

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} h3{font-size:15px}
.meta{color:#666;margin-bottom:16px}
table.runs{border-collapse:collapse;width:100%;font-size:12.5px}
table.runs th,table.runs td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:right;
white-space:nowrap} table.runs th{cursor:pointer;background:#f4f5f7;position:sticky;top:0}
table.runs td.t,table.runs th.t{text-align:left}
table.runs tr.sel td{background:#fff6d5} table.runs tbody tr{cursor:pointer}
table.runs tbody tr:hover td{background:#eef3fb}
th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
.plots{display:flex;flex-wrap:wrap;gap:18px} figure{margin:0} figcaption{color:#555;font-size:12px}
svg.plot{background:#fff;border:1px solid #e3e3e3} .kv{color:#444;font-size:13px}
.axis{stroke:#888;stroke-width:1} .grid{stroke:#eee;stroke-width:1} text{font-size:11px;fill:#444}
"""

_JS = """
(function(){
  var table=document.getElementById('runs');
  function key(td,num){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;
    if(num){var f=parseFloat(v);return isNaN(f)?-Infinity:f;}return v.toLowerCase();}
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    th.addEventListener('click',function(){
      var num=th.getAttribute('data-kind')==='num';
      var asc=th.getAttribute('aria-sort')!=='ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells,function(o){o.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){var x=key(a.cells[i],num),y=key(b.cells[i],num);
        return (x<y?-1:x>y?1:0)*(asc?1:-1);});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  function choose(id){
    var found=false;
    Array.prototype.forEach.call(document.querySelectorAll('section.run-detail'),function(s){
      var on=s.getAttribute('data-run')===id;s.hidden=!on;found=found||on;});
    Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
      r.classList.toggle('sel',r.getAttribute('data-run')===id);});
    var none=document.getElementById('no-detail');if(none)none.hidden=found;
  }
  Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
    r.addEventListener('click',function(){choose(r.getAttribute('data-run'));});});
  var first=document.body.getAttribute('data-chosen');
  if(location.hash.length>1)first=location.hash.slice(1);
  if(first)choose(first);
})();
"""


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _num(v: float) -> str:
    """A short label for an axis tick or value."""
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


class _Frame:
    """A plot area with axes: maps data to SVG coordinates."""

    def __init__(
        self,
        w: int,
        h: int,
        x: tuple[float, float],
        y: tuple[float, float],
        xlabel: str,
        ylabel: str,
    ) -> None:
        self.w, self.h = w, h
        self.left, self.right, self.top, self.bottom = 56, 14, 12, 38
        self.x0, self.x1 = x if x[1] > x[0] else (x[0], x[0] + 1)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0], y[0] + 1)
        self.xlabel, self.ylabel = xlabel, ylabel

    def px(self, x: float) -> float:
        span = self.w - self.left - self.right
        return self.left + (x - self.x0) / (self.x1 - self.x0) * span

    def py(self, y: float) -> float:
        span = self.h - self.top - self.bottom
        return self.h - self.bottom - (y - self.y0) / (self.y1 - self.y0) * span

    def axes(self) -> list[str]:
        out = []
        for t in _ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(
                f'<line class="grid" x1="{self.left}" x2="{self.w - self.right}" '
                f'y1="{y:.1f}" y2="{y:.1f}"/>'
            )
            out.append(
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(t)}</text>'
            )
        for t in _ticks(self.x0, self.x1):
            x = self.px(t)
            out.append(
                f'<text x="{x:.1f}" y="{self.h - self.bottom + 15}" '
                f'text-anchor="middle">{_num(t)}</text>'
            )
        yb = self.h - self.bottom
        out.append(
            f'<line class="axis" x1="{self.left}" x2="{self.w - self.right}" y1="{yb}" y2="{yb}"/>'
        )
        out.append(
            f'<line class="axis" x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{yb}"/>'
        )
        out.append(
            f'<text x="{(self.left + self.w - self.right) / 2:.0f}" y="{self.h - 6}" '
            f'text-anchor="middle">{_esc(self.xlabel)}</text>'
        )
        out.append(
            f'<text transform="translate(13,{(self.top + yb) / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{_esc(self.ylabel)}</text>'
        )
        return out


def _svg(kind: str, w: int, h: int, body: list[str], title: str) -> str:
    return (
        f'<svg class="plot" data-plot="{kind}" xmlns="http://www.w3.org/2000/svg" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_esc(title)}">'
        f"<title>{_esc(title)}</title>" + "".join(body) + "</svg>"
    )


def throughput_svg(rows: Sequence[Mapping[str, Any]], w: int = 520, h: int = 240) -> str:
    """samples/s per interval against seconds since the run began (a step line)."""
    pts = [(float(r["t_start"]), float(r["t_end"]), float(r["samples_per_s"])) for r in rows]
    xmax = max((p[1] for p in pts), default=1.0)
    ymax = max((p[2] for p in pts), default=1.0) * 1.1 or 1.0
    f = _Frame(w, h, (0.0, xmax), (0.0, ymax), "seconds since iteration began", "samples/s")
    body = f.axes()
    path: list[str] = []
    for a, b, v in pts:
        path.append(
            f"{'M' if not path else 'L'}{f.px(a):.1f},{f.py(v):.1f} L{f.px(b):.1f},{f.py(v):.1f}"
        )
    if path:
        body.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{_COLORS[0]}" stroke-width="2"/>'
        )
    for a, b, v in pts:
        body.append(
            f'<circle cx="{f.px(b):.1f}" cy="{f.py(v):.1f}" r="2.5" fill="{_COLORS[0]}">'
            f"<title>{a:.1f}-{b:.1f} s: {v:,.0f} samples/s</title></circle>"
        )
    return _svg("throughput", w, h, body, "throughput over time")


def stages_svg(run: Mapping[str, Any], w: int = 520, h: int = 240) -> str:
    """Seconds per stage (horizontal bars), and the trainer's wait share."""
    vals = [(s, float(run.get(f"{s}_s") or 0.0)) for s in Stats.STAGES]
    vmax = max((v for _, v in vals), default=0.0) or 1.0
    left, right, top = 80, 70, 14
    bar_h = (h - top - 30) / len(vals)
    body = []
    for i, (s, v) in enumerate(vals):
        y = top + i * bar_h
        bw = max(1.0, (w - left - right) * v / vmax)
        body.append(f'<text x="{left - 6}" y="{y + bar_h * 0.62:.1f}" text-anchor="end">{s}</text>')
        body.append(
            f'<rect x="{left}" y="{y + 3:.1f}" width="{bw:.1f}" height="{bar_h - 6:.1f}" '
            f'fill="{_STAGE_COLORS[s]}"><title>{s}: {v:.3f} s</title></rect>'
        )
        body.append(f'<text x="{left + bw + 4:.1f}" y="{y + bar_h * 0.62:.1f}">{v:.2f} s</text>')
    ib = float(run.get("input_bound") or 0.0)
    wall = float(run.get("seconds") or 0.0)
    body.append(
        f'<text x="{left}" y="{h - 10}">input-bound {ib:.0%} of {wall:.1f} s; '
        f"bottleneck: {_esc(run.get('bottleneck'))}</text>"
    )
    return _svg("stages", w, h, body, "stage breakdown (worker stages summed over workers)")


def scatter_svg(runs: Sequence[Mapping[str, Any]], w: int = 560, h: int = 300) -> str:
    """Across runs: input-bound % (x) against samples/s (y); one point per run."""
    pts = [
        (100.0 * float(r.get("input_bound") or 0.0), float(r.get("samples_per_s") or 0.0), r)
        for r in runs
    ]
    ymax = max((p[1] for p in pts), default=1.0) * 1.1 or 1.0
    f = _Frame(
        w, h, (0.0, 100.0), (0.0, ymax), "input-bound % (trainer waiting for data)", "samples/s"
    )
    body = f.axes()
    kinds: dict[str, str] = {}
    for x, y, r in pts:
        c = kinds.setdefault(str(r.get("kind") or "loader"), _COLORS[len(kinds) % len(_COLORS)])
        label = (
            f"{r['run_id'][:8]} {r.get('run_name') or ''}: {y:,.0f} samples/s, {x:.0f}% input-bound"
        )
        body.append(
            f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="4.5" fill="{c}" fill-opacity="0.8" '
            f'data-run="{_esc(r["run_id"])}"><title>{_esc(label)}</title></circle>'
        )
    for i, (k, c) in enumerate(kinds.items()):
        body.append(
            f'<circle cx="{w - 90}" cy="{20 + 16 * i}" r="4.5" fill="{c}"/>'
            f'<text x="{w - 80}" y="{24 + 16 * i}">{_esc(k)}</text>'
        )
    return _svg("scatter", w, h, body, "input-bound % against throughput, across runs")


def sources_svg(
    sources: Sequence[Mapping[str, Any]],
    weights: Mapping[str, float] | None,
    w: int = 520,
    h: int = 240,
) -> str:
    """Per interval, each source's share of the samples (stacked), with the weights' targets."""
    by_seq: dict[int, dict[str, int]] = {}
    for s in sources:
        by_seq.setdefault(int(s["seq"]), {})[str(s["source"])] = int(s["samples"])
    names = sorted({n for d in by_seq.values() for n in d} | set(weights or {}))
    colors = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(names)}
    f = _Frame(
        w - 120, h, (0.0, float(max(1, len(by_seq)))), (0.0, 1.0), "interval", "share of samples"
    )
    body = f.axes()
    seqs = sorted(by_seq)
    bw = (f.px(1) - f.px(0)) * 0.85
    for i, seq in enumerate(seqs):
        d = by_seq[seq]
        total = sum(d.values()) or 1
        acc = 0.0
        for n in names:
            share = d.get(n, 0) / total
            if share <= 0:
                continue
            y_top, y_bot = f.py(acc + share), f.py(acc)
            body.append(
                f'<rect x="{f.px(i) + 1:.1f}" y="{y_top:.1f}" width="{max(1.0, bw):.1f}" '
                f'height="{max(0.5, y_bot - y_top):.1f}" fill="{colors[n]}">'
                f"<title>interval {seq}: {_esc(n)} {share:.1%} ({d.get(n, 0)})</title></rect>"
            )
            acc += share
    if weights:
        total_w = sum(float(v) for v in weights.values()) or 1.0
        acc = 0.0
        for n in names[:-1]:
            acc += float(weights.get(n, 0.0)) / total_w
            y = f.py(acc)
            body.append(
                f'<line x1="{f.left}" x2="{f.w - f.right}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#222" stroke-dasharray="4 3"/>'
            )
    for i, n in enumerate(names):
        wt = f" (w {float(weights[n]):.2f})" if weights and n in weights else ""
        body.append(
            f'<rect x="{w - 112}" y="{14 + 16 * i}" width="10" height="10" fill="{colors[n]}"/>'
            f'<text x="{w - 98}" y="{23 + 16 * i}">{_esc(n)}{wt}</text>'
        )
    return _svg("sources", w, h, body, "per-source proportions per interval (dashed: weights)")


def _cell(run: Mapping[str, Any], col: str) -> tuple[str, str]:
    """(shown text, sort value) of one table cell."""
    if col == "mb_per_s":
        mb = float(run.get("bytes_per_s") or 0.0) / 1e6
        return f"{mb:,.1f}", repr(mb)
    if col == "input_bound_pct":
        pct = 100.0 * float(run.get("input_bound") or 0.0)
        return f"{pct:.1f}", repr(pct)
    v = run.get(col)
    if col == "run_id":
        return str(v)[:8], str(v)
    if col == "rank":
        return f"{v}/{run.get('world_size')}", str(v)
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S"), v.isoformat()
    if isinstance(v, float):
        return f"{v:,.1f}", repr(v)
    if isinstance(v, int):
        return f"{v:,}", str(v)
    return ("" if v is None else str(v)), ("" if v is None else str(v))


def _table(runs: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(
        f'<th data-kind="{kind}" class="{"t" if kind == "text" else "n"}">{_esc(h)}</th>'
        for h, _, kind in _TABLE
    )
    body = []
    for r in runs:
        cells = []
        for _, col, kind in _TABLE:
            text, v = _cell(r, col)
            cells.append(
                f'<td class="{"t" if kind == "text" else "n"}" data-v="{_esc(v)}">{_esc(text)}</td>'
            )
        body.append(f'<tr data-run="{_esc(r["run_id"])}">{"".join(cells)}</tr>')
    return (
        f'<table class="runs" id="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _detail(store: RunStore, run: Mapping[str, Any]) -> str:
    rid = run["run_id"]
    rows = store.intervals(rid)
    srcs = store.sources(rid)
    weights = run.get("weights") if isinstance(run.get("weights"), Mapping) else None
    figs = [
        f"<figure>{throughput_svg(rows)}<figcaption>throughput over time ({len(rows)} intervals)"
        "</figcaption></figure>",
        f"<figure>{stages_svg(run)}<figcaption>stage breakdown</figcaption></figure>",
    ]
    if srcs or weights:
        figs.append(
            f"<figure>{sources_svg(srcs, weights)}<figcaption>mixture sources</figcaption></figure>"
        )
    tags = run.get("tags") or {}
    kv = [
        ("source", run.get("source")),
        ("fingerprint", (run.get("fingerprint") or "")[:16]),
        ("seed", run.get("seed")),
        ("shuffle", run.get("shuffle")),
        ("job", run.get("job")),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) if tags else None),
        ("weights", json.dumps(weights) if weights else None),
        ("bottleneck", run.get("bottleneck_reason")),
    ]
    info = " &middot; ".join(f"<b>{k}</b> {_esc(v)}" for k, v in kv if v not in (None, ""))
    title = f"run {rid[:8]}" + (
        f" &ldquo;{_esc(run['run_name'])}&rdquo;" if run.get("run_name") else ""
    )
    return (
        f'<section class="run-detail" data-run="{_esc(rid)}" hidden><h3>{title}</h3>'
        f'<p class="kv">{info}</p><div class="plots">{"".join(figs)}</div></section>'
    )


def build_report(
    store: RunStore,
    *,
    run_id: str | None = None,
    since: datetime.datetime | None = None,
    where: str | None = None,
    limit: int = 500,
    detail_runs: int = 25,
) -> str:
    """The page's HTML (see module docstring). ``run_id``: the run shown first (default: the
    newest); details are embedded for the ``detail_runs`` newest runs and that one."""
    runs = store.list_runs(since=since, where=where, limit=limit)
    chosen = run_id or (runs[0]["run_id"] if runs else None)
    detailed = runs[:detail_runs]
    if chosen and all(r["run_id"] != chosen for r in detailed):
        detailed = [store.get_run(chosen), *detailed]
    mixtures = [r for r in runs if r.get("weights")]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>m5stream runs</title>",
        f"<style>{_CSS}</style></head>",
        f'<body data-chosen="{_esc(chosen or "")}">',
        "<h1>m5stream runs</h1>",
        f'<div class="meta">{len(runs)} runs from {_esc(redact(store.url))}; written {now}. '
        "Click a column to sort, a row to show that run.</div>",
        _table(runs),
        "<h2>Chosen run</h2>",
        '<p id="no-detail" hidden>Details are embedded for the newest runs only: '
        "<code>m5stream report --run ID</code> embeds another.</p>",
        *(_detail(store, r) for r in detailed),
        "<h2>Across runs</h2>",
        f'<div class="plots"><figure>{scatter_svg(runs)}<figcaption>each point a run'
        "</figcaption></figure></div>",
    ]
    if mixtures:
        m = mixtures[0]
        parts += [
            "<h2>Mixtures</h2>",
            f'<div class="plots"><figure>{sources_svg(store.sources(m["run_id"]), m["weights"])}'
            f"<figcaption>per-source proportions of the newest mixture run, {m['run_id'][:8]}"
            "</figcaption></figure></div>",
        ]
    parts += [f"<script>{_JS}</script>", "</body></html>"]
    return "\n".join(parts)


def write_report(store: RunStore, path: str | Path, **options: Any) -> Path:
    """Write :func:`build_report` to ``path`` (atomically); return the path."""
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(build_report(store, **options), encoding="utf-8")
    tmp.replace(out)
    return out
