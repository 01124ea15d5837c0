"""``dataengine serve`` in a real browser: Debian's chromium driven by Playwright (which cannot download a
browser of its own here). Every page loads without a console error, a kept and a rejected sample play to
their end, a reject reason filters the table, and a moved threshold shows the count DuckDB gives."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.serve_helpers import serving

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (the Makefile's install target installs it with apt)",
    ),
]


@pytest.fixture(scope="module")
def server(rejecting_build_dir: Path) -> Iterator[str]:
    with serving(rejecting_build_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A page whose console errors, page errors and failed requests fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []

    def remote(route: Any) -> None:  # the app must work offline: nothing but the server itself
        problems.append(f"remote request: {route.request.url}")
        route.abort()

    context.route(re.compile(r"^(?!http://127\.0\.0\.1:\d+/)[a-z]+://"), remote)
    page = context.new_page()
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(  # a media request the browser itself cancels (leaving the page) is no failure of the app
        "requestfailed",
        lambda r: (
            problems.append(f"request failed: {r.url} {r.failure}")
            if "ERR_ABORTED" not in str(r.failure)
            else None
        ),
    )
    page.problems = problems
    yield page
    context.close()
    assert not problems, problems


def manifest(build: Path, query: str, *args: Any) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW samples AS SELECT * FROM '{build / 'manifest' / 'samples.parquet'}'")
    con.execute(f"CREATE VIEW rejects AS SELECT * FROM '{build / 'manifest' / 'rejects.parquet'}'")
    return con.execute(query, list(args)).fetchall()


def open_page(page: Any, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_selector(f"body[data-ready='{name}']", timeout=30_000)


def shot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000


def test_overview(page: Any, server: str, rejecting_build_dir: Path, tmp_path: Path) -> None:
    open_page(page, server + "/", "overview")
    kept, rejected = manifest(
        rejecting_build_dir, "SELECT (SELECT count(*) FROM samples), (SELECT count(*) FROM rejects)"
    )[0]
    assert page.text_content("#kept-count") == str(kept)
    assert page.text_content("#rejected-count") == str(rejected)
    histograms = page.locator("svg.hist")
    metrics = len(page.evaluate("fetch('/api/facets').then(r => r.json()).then(f => f.metrics)"))
    assert histograms.count() == metrics > 10
    assert page.locator("svg.hist[data-metric='duration_s'] rect").count() > 1
    shot(page, tmp_path / "overview.png")


def play_to_end(page: Any) -> float:
    """Play the sample page's player from the start; the audio's duration once it reached ``ended``."""
    return page.evaluate(
        """() => new Promise((resolve, reject) => {
            const a = document.getElementById('player');
            a.addEventListener('ended', () => resolve(a.duration));
            a.addEventListener('error', () => reject(new Error('media error ' + (a.error && a.error.code))));
            a.play().catch(reject);
        })"""
    )


@pytest.mark.parametrize("status", ["kept", "rejected"])
def test_a_sample_plays_to_its_end(
    page: Any, server: str, rejecting_build_dir: Path, status: str, tmp_path: Path
) -> None:
    table = "samples" if status == "kept" else "rejects WHERE reason = 'too_short'"
    sample_id, duration = manifest(
        rejecting_build_dir, f"SELECT id, duration_s FROM {table} ORDER BY index LIMIT 1"
    )[0]
    open_page(page, f"{server}/sample/{sample_id}?status={status}", "sample")
    page.wait_for_function("() => document.querySelector('img.spectrogram').complete")
    assert page.evaluate("document.querySelector('img.spectrogram').naturalWidth") > 50
    played = play_to_end(page)
    assert abs(played - duration) < 0.05
    if status == "rejected":
        assert "too_short" in page.text_content("#reject-reason")
        assert page.locator("#metrics tr[data-metric='duration_s'] .fires").count() == 1
    else:
        assert "<|sound_start|>" in page.text_content("#conversation")
    shot(page, tmp_path / f"sample-{status}.png")


def test_browse_filters_by_a_reject_reason(
    page: Any, server: str, rejecting_build_dir: Path, tmp_path: Path
) -> None:
    open_page(page, server + "/browse", "browse")
    total = manifest(
        rejecting_build_dir, "SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM rejects)"
    )[0][0]
    page.wait_for_function(
        f"() => document.querySelector('#result-count')?.textContent === '{total} samples'"
    )
    page.select_option("select[name=reason]", "too_short")
    n = manifest(rejecting_build_dir, "SELECT count(*) FROM rejects WHERE reason = 'too_short'")[0][0]
    page.wait_for_function(f"() => document.querySelector('#result-count')?.textContent === '{n} samples'")
    statuses = page.eval_on_selector_all("table.samples tbody tr", "rows => rows.map(r => r.dataset.status)")
    assert statuses == ["rejected"] * n
    assert "reason=too_short" in page.url
    shot(page, tmp_path / "browse.png")


def test_moving_a_threshold_counts_what_duckdb_counts(
    page: Any, server: str, rejecting_build_dir: Path, tmp_path: Path
) -> None:
    open_page(page, server + "/thresholds", "thresholds")
    page.wait_for_selector("#explore-dropped")
    durations = [r[0] for r in manifest(rejecting_build_dir, "SELECT duration_s FROM samples ORDER BY 1")]
    value = durations[len(durations) // 2]
    expected = manifest(rejecting_build_dir, "SELECT count(*) FROM samples WHERE duration_s < ?", value)[0][0]
    assert expected > 0
    box = page.locator("[data-bound='audio_filters.min_duration_s'] input.bound-value")
    box.fill(str(value))
    box.dispatch_event("change")
    page.wait_for_function(f"() => document.querySelector('#explore-dropped')?.textContent === '{expected}'")
    assert (
        page.locator("#nearest-fires .near").count() > 0
        and page.locator("#nearest-holds .near audio").count() > 0
    )
    assert f"min_duration_s: {value}" in page.input_value("#recipe-yaml")
    shot(page, tmp_path / "thresholds.png")
