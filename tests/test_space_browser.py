"""The comparison Space in a real headless browser: Debian's chromium driven by Playwright (the system browser, never
a downloaded one). Types a text, submits it, reads every model's label off the page and checks them against the
app's API; an example from the real test set fills in its gold label; the Evaluation tab shows the results table.
Screenshots of the Compare and Evaluation tabs are saved in the test's tmp folder (the path is printed: run with -s).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.space_fixtures import TRAINED_STUDENT, UNTRAINED_STUDENT, SpaceRun

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches out: no update checks, no sync, no QUIC probes.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Loading the teacher and the student on the first request takes a while on two busy CPU cores.
PREDICTION_TIMEOUT_MS = 180_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason="Debian's chromium is not installed (scripts/setup.sh --test installs it)"),
]


@pytest.fixture
def page(served_space: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served_space, wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def test_compare_in_the_browser(page, space_run: SpaceRun, served_space: str, tmp_path: Path) -> None:  # noqa: ANN001
    from gradio_client import Client

    text = "The striker scored twice as the home team won the cup final."
    page.locator("#input-text textarea").fill(text)
    page.locator("#classify").click()
    page.locator("#status-0 strong").first.wait_for(timeout=PREDICTION_TIMEOUT_MS)
    page.locator("#status-2").get_by_text("Error").wait_for()
    screenshot = tmp_path / "space_compare.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot: {screenshot}")

    on_page = [page.locator(f"#label-{index} [data-testid='label-output-value']") for index in range(2)]
    page_labels = [locator.inner_text().strip() for locator in on_page]
    *_, summary, _ = Client(served_space, verbose=False).predict(text, "en", api_name="/classify")
    api_labels = {row[0]: row[3] for row in summary["data"]}
    assert page_labels == [api_labels["teacher"], api_labels[TRAINED_STUDENT]]
    assert set(page_labels) <= set(space_run.recipe.label_names)
    agreement = "agrees with the teacher" if page_labels[1] == page_labels[0] else "disagrees"
    assert agreement in page.locator("#status-1").inner_text()
    assert "hfsynth_student.json is missing" in page.locator("#status-2").inner_text()
    assert page.locator("#label-2 [data-testid='label-output-value']").count() == 0
    assert UNTRAINED_STUDENT in page.locator("#summary").inner_text()

    # An example from the real test set brings its gold label; typing a text of one's own clears it.
    first_example = page.locator("#examples tbody tr").first
    first_example.click()
    gold = page.locator("#gold-label textarea, #gold-label input").first
    page.wait_for_function("element => element.value !== ''", arg=gold.element_handle())
    assert gold.input_value() in space_run.recipe.label_names
    page.locator("#input-text textarea").press_sequentially(" More.")
    page.wait_for_function("element => element.value === ''", arg=gold.element_handle())

    page.get_by_role("tab", name="Evaluation").click()
    results = page.locator("#results-table")
    results.get_by_text(TRAINED_STUDENT).first.wait_for()
    assert "macro_f1" in results.inner_text()
    page.screenshot(path=str(tmp_path / "space_evaluation.png"), full_page=True)
