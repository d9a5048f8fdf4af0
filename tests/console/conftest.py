"""Fixtures of the console tests: the distribution's headless Chromium driven through Selenium."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.system_packages import ensure_chromium

#: Where the browser tests leave a screenshot of each page, for people to look at.
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cache" / "console-screenshots"
#: Longest a page may take to show what a test waits for (bounds a hang; never decides a pass).
PAGE_WAIT_S = 120.0


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(browser, driver) paths; installs the Debian packages when they are missing (CI runs as root)."""
    found = ensure_chromium()
    if found is None:
        pytest.fail("headless Chromium is needed: install the Debian packages 'chromium' and 'chromium-driver'")
    return found


@pytest.fixture(scope="module")
def browser(chromium: tuple[str, str]) -> Iterator[object]:
    """One headless Chromium for a test module, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # Without the background-networking flags Chromium stalls on the refused connections of an
    # offline machine; --no-sandbox because CI runs as root.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The browser's console is read at the end of the module: a script error fails the tests.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(PAGE_WAIT_S)
    driver.set_script_timeout(PAGE_WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
