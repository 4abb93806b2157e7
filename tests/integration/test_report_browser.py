"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright. The runs table holds the recorded rows, sorting works both ways, every plot of the
chosen run and across runs renders with a non-zero size, choosing another run shows its plots,
the console stays free of errors and the page requests nothing but itself. The screenshot is
kept as an artifact: ``$M5STREAM_ARTIFACTS`` or ``benchmarks/artifacts/report-browser.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from m5stream.records.report import write_report
from m5stream.records.store import RunStore
from tests.records_common import recorded_loader_run, recorded_mixture_run

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("M5STREAM_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "benchmarks" / "artifacts"
)


def _runs(tmp_path: Path) -> tuple[str, list[str], str]:
    from m5stream.bench import run_bench
    from tests.helpers import make_tar_dataset

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    mix = recorded_mixture_run(url)
    recorded_loader_run(url, tmp_path / "a")
    recorded_loader_run(url, tmp_path / "b", num_workers=2)
    src = make_tar_dataset(tmp_path / "bench", shards=2, per_shard=40)
    run_bench(src, batch_size=8, workers=0, batches=5, progress=False, record=url)
    with RunStore(url) as store:
        ids = [r["run_id"] for r in store.list_runs()]
    return url, ids, mix


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    missing = "playwright is not installed" if sync_api is None else None
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)  # scripts/setup.sh installs both: in CI this is a failure
        pytest.skip(missing)
    assert sync_api is not None
    url, ids, mix = _runs(tmp_path)
    assert len(ids) == 4
    page_path = tmp_path / "report.html"
    with RunStore(url) as store:
        write_report(store, page_path)
    page_url = page_path.as_uri()
    console_errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.on("pageerror", lambda e: console_errors.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_url)
            page.wait_for_load_state("load")

            # the table has exactly the recorded runs, newest first
            rows = page.eval_on_selector_all("#runs tbody tr", "rs => rs.map(r => r.dataset.run)")
            assert rows == ids

            def column(header: str) -> list[str]:
                idx = page.eval_on_selector_all(
                    "#runs thead th", f"hs => hs.findIndex(h => h.textContent === {header!r})"
                )
                assert idx >= 0
                return page.eval_on_selector_all(
                    "#runs tbody tr",
                    f"rs => rs.map(r => r.cells[{idx}].getAttribute('data-v'))",
                )

            page.click("#runs thead th:text-is('samples')")
            got = [int(v) for v in column("samples")]
            assert got == sorted(got) and len(set(got)) > 1
            assert (
                page.get_attribute("#runs thead th:text-is('samples')", "aria-sort") == "ascending"
            )
            page.click("#runs thead th:text-is('samples')")
            assert [int(v) for v in column("samples")] == sorted(got, reverse=True)
            page.click("#runs thead th:text-is('kind')")
            kinds = column("kind")
            assert kinds == sorted(kinds) and set(kinds) == {"bench", "loader"}

            def plot_sizes(selector: str) -> list[tuple[str, float, float]]:
                return page.eval_on_selector_all(
                    selector,
                    "ss => ss.map(s => { const b = s.getBoundingClientRect(); "
                    "return [s.dataset.plot, b.width, b.height]; })",
                )

            # the newest run is chosen at first: its plots and the across-runs plots render
            visible = plot_sizes("section.run-detail:not([hidden]) svg.plot")
            assert [k for k, _, _ in visible] == ["throughput", "stages"]
            assert all(w > 100 and h > 100 for _, w, h in visible), visible
            across = plot_sizes("body > div.plots svg.plot")
            assert [k for k, _, _ in across] == ["scatter", "sources"]
            assert all(w > 100 and h > 100 for _, w, h in across), across
            n_points = page.eval_on_selector_all(
                "svg[data-plot=scatter] circle[data-run]", "c => c.length"
            )
            assert n_points == 4

            # choosing the mixture run shows its three plots, and only its section
            page.click(f"#runs tbody tr[data-run='{mix}']")
            shown = page.eval_on_selector_all(
                "section.run-detail:not([hidden])", "ss => ss.map(s => s.dataset.run)"
            )
            assert shown == [mix]
            visible = plot_sizes("section.run-detail:not([hidden]) svg.plot")
            assert [k for k, _, _ in visible] == ["throughput", "stages", "sources"]
            assert all(w > 100 and h > 100 for _, w, h in visible), visible
            bars = page.eval_on_selector_all(
                "section.run-detail:not([hidden]) svg[data-plot=sources] rect title",
                "ts => ts.length",
            )
            assert bars == 4 * 3  # intervals x sources
            assert page.get_attribute(f"#runs tbody tr[data-run='{mix}']", "class") == "sel"

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "report-browser.png"
            page.screenshot(path=str(shot), full_page=True)
            shutil.copy(page_path, ARTIFACTS / "report-browser.html")
        finally:
            browser.close()
    print(f"report screenshot: {shot}")
    assert shot.stat().st_size > 20_000
    assert console_errors == []
    assert requests == [page_url]  # nothing fetched but the page itself
