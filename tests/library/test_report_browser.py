"""The HTML report in a real headless browser (Debian's chromium + chromedriver, driven by selenium).

Skipped, with one line saying why, where no browser is installed; `.ci/run` installs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from approxlut.library import Cost, Library
from approxlut.library.report import MIN_PLOT_POINTS, write_report
from approxlut.lutgen.simulate import simulate_lut

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"no headless browser: {path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no browser driver: the selenium package is not installed (pip install -e '.[dev]')"
    return None


pytestmark = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a small library: enough 8x8 unsigned multipliers for a plot, two 4x4 signed ones without."""
    from .conftest import build_multiplier

    root = tmp_path_factory.mktemp("browser")
    with Library.open(root / "lib") as lib:
        for drop in range(MIN_PLOT_POINTS + 1):
            netlist = build_multiplier(8, False, drop=drop, name=f"m8u_drop{drop}")
            power = 0.4 - 0.05 * drop if drop != 2 else 0.45  # one point off the front
            lib.add(simulate_lut(netlist, signed=False), netlist, cost=Cost(power, 700 * power, 1.2))
        for drop in (0, 3):
            netlist = build_multiplier(4, True, drop=drop, name=f"m4s_drop{drop}")
            lib.add(simulate_lut(netlist, signed=True), netlist)  # no cost: empty cells sort last
        summary = write_report(lib, root / "site")
    assert summary.plots == ["plots/power-mae-8x8u.png"] and summary.unplotted == {"4x4s": 0}
    return summary.index


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _column(driver, header: str) -> list[str]:
    headers = [th.text.rstrip(" ▲▼") for th in driver.find_elements("css selector", "#library thead th")]
    index = headers.index(header) + 1
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll('#library tbody tr:not([hidden]) td:nth-child({index})'))"
        ".map(td => td.dataset.v);"
    )


def _click_header(driver, header: str) -> None:
    for th in driver.find_elements("css selector", "#library thead th"):
        if th.text.rstrip(" ▲▼") == header:
            th.click()
            return
    raise AssertionError(f"no column {header!r}")


def _images_loaded(driver) -> list[str]:
    """The sources of the images on the page that did not load."""
    return driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
    )


def _resources_are_local(driver) -> None:
    urls = driver.execute_script(
        "return Array.from(document.querySelectorAll('[src], link[href], a[href]')).map(e => e.src || e.href);"
    )
    assert urls and all(url.startswith("file://") for url in urls), urls


def test_the_table_comes_first_and_sorts_numbers_numerically(report, browser) -> None:
    driver = browser
    driver.get(report.as_uri())
    table = driver.find_element("id", "library")
    first_plot = driver.find_element("css selector", ".plots img")
    assert table.location["y"] < first_plot.location["y"] < table.location["y"] + table.size["height"] + 400
    assert table.location["y"] < 400  # the page opens on the table
    assert driver.find_element("id", "count").text == "8 of 8 multipliers shown"
    _resources_are_local(driver)
    assert not _images_loaded(driver)

    _click_header(driver, "gates")
    gates = [int(v) for v in _column(driver, "gates")]
    assert gates == sorted(gates) and len(gates) == 8 and len({len(str(g)) for g in gates}) > 1  # 3 and 4 digits
    _click_header(driver, "gates")
    assert [int(v) for v in _column(driver, "gates")] == sorted(gates, reverse=True)
    _click_header(driver, "power mW")
    powers = _column(driver, "power mW")
    assert powers[-2:] == ["", ""]  # no cost: last
    assert [float(v) for v in powers[:-2]] == sorted(float(v) for v in powers[:-2])
    _click_header(driver, "power mW")
    powers = _column(driver, "power mW")
    assert powers[-2:] == ["", ""] and [float(v) for v in powers[:-2]] == sorted(map(float, powers[:-2]), reverse=True)
    _click_header(driver, "kind")
    assert _column(driver, "kind") == ["4x4s"] * 2 + ["8x8u"] * 6  # 4x4 before 8x8 (numbers, not text)


def test_the_table_filters(report, browser) -> None:
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(report.as_uri())
    count = driver.find_element("id", "count")
    driver.find_element("id", "search").send_keys("drop3")
    assert sorted(_column(driver, "name")) == ["m4s_drop3", "m8u_drop3"] and count.text == "2 of 8 multipliers shown"
    Select(driver.find_element("id", "f-kind")).select_by_value("4x4s")
    assert _column(driver, "name") == ["m4s_drop3"]
    driver.find_element("id", "search").clear()
    driver.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
    assert sorted(_column(driver, "name")) == ["m4s_drop0", "m4s_drop3"]
    Select(driver.find_element("id", "f-kind")).select_by_value("")
    driver.find_element("id", "f-max-mae").send_keys("0.01")
    shown = _column(driver, "MAE %")
    assert shown and all(float(v) <= 0.01 for v in shown) and len(shown) < 8
    driver.find_element("id", "f-max-power").send_keys("0.3")
    assert all(v != "" and float(v) <= 0.3 for v in _column(driver, "power mW"))


def test_every_circuit_page_opens_with_its_images_and_downloads(report, browser) -> None:
    driver = browser
    driver.get(report.as_uri())
    links = [
        (a.text, a.get_attribute("href"))
        for a in driver.find_elements("css selector", "#library tbody td:first-child a")
    ]
    assert len(links) == 8
    for name, href in links:
        driver.get(href)
        assert driver.find_element("tag name", "h1").text == name
        assert not _images_loaded(driver), name
        assert driver.find_elements("css selector", "img.heatmap"), name
        _resources_are_local(driver)
        downloads = [a.get_attribute("href") for a in driver.find_elements("css selector", "ul.downloads a")]
        suffixes = {Path(unquote(urlparse(url).path)).suffix for url in downloads}
        assert {".npz"} <= suffixes and (".bin" in suffixes) == name.startswith("m8u"), (name, suffixes)
        assert all(Path(unquote(urlparse(url).path)).is_file() for url in downloads)
        driver.find_element("link text", "← all multipliers").click()
        assert driver.find_element("id", "library")
