"""The console in a real browser (headless Chromium) against a real daemon with real packages: sign in
(and fail with a wrong token), install by upload and watch the stages, activate, run an image and
find the drawn rectangles, recent calls and health, install by drag-and-drop, switch and see the
binding move, follow a log line, a refused action's coded error, rollback / deactivate / uninstall,
sign out. One daemon and one browser for the module; the tests run in this order.

Each page is saved as a screenshot under .cache/console-screenshots/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.api.support import NAME, RunningServer, make_zip, png_bytes, start_server
from tests.console.conftest import PAGE_WAIT_S, SCREENSHOTS
from tests.support.waiting import wait_until

T = TypeVar("T")
# One scenario in order on one daemon and one browser: under xdist the whole module runs on one
# worker (tests/conftest.py, IN_ORDER_MODULES).


@dataclass
class Station:
    server: RunningServer
    zips: dict[str, Path]
    images: Path


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    base = tmp_path_factory.mktemp("console-browser")
    zips = {version: make_zip(base / f"pkgs-{version}", version=version) for version in ("1.0.0", "2.0.0")}
    images = base / "images"
    images.mkdir()
    # The test algorithm finds a 10x10 defect at (0, 0) in a bright image.
    (images / "bright.png").write_bytes(png_bytes(255, size=(120, 160)))
    server = start_server(base / "root")
    try:
        yield Station(server, zips, images)
    finally:
        server.stop()


def _until(what: str, probe: Callable[[], T]) -> T:
    """Wait for ``probe`` to return something truthy; a page element replaced while it is read
    (the overview re-renders every second and a half) counts as not yet."""
    def attempt() -> T | None:
        try:
            return probe()
        except (StaleElementReferenceException, WebDriverException):
            return None

    return wait_until(attempt, PAGE_WAIT_S, what)


def _text(driver: WebDriver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def _shot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _go(driver: WebDriver, page: str) -> None:
    driver.execute_script("location.hash = arguments[0]", page)
    _until(f"the {page} page", lambda: driver.find_element(By.ID, f"page-{page}").is_displayed())


def _confirm(driver: WebDriver, expected: str) -> None:
    dialog_text = _until("the confirmation dialog", lambda: driver.find_element(By.ID, "confirm-text").text)
    assert expected in dialog_text, dialog_text
    driver.find_element(By.ID, "confirm-ok").click()


def _row_button(driver: WebDriver, version: str, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#versions tr[data-version="{NAME}@{version}"] button.{css}')


def _click(what: str, find: Callable[[], WebElement]) -> None:
    """Click what ``find`` returns, finding it again if the table was re-rendered in between."""
    def attempt() -> bool:
        find().click()
        return True

    _until(what, attempt)


def test_wrong_token_is_refused_with_a_clear_message(station: Station, browser: Any) -> None:
    browser.get(station.server.url + "/")
    _until("the sign-in form", lambda: browser.find_element(By.ID, "page-signin").is_displayed())
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "signin-button").click()
    message = _until("the wrong-token message", lambda: _text(browser, "#signin-error"))
    assert "Wrong token" in message and ".token" in message
    assert not browser.find_element(By.ID, "tabs").is_displayed()
    _shot(browser, "sign-in")


def test_sign_in_shows_the_overview_and_sets_a_strict_httponly_cookie(station: Station, browser: Any) -> None:
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(station.server.token)
    browser.find_element(By.ID, "signin-button").click()
    _until("the overview", lambda: browser.find_element(By.ID, "page-overview").is_displayed())
    _until("the empty versions table", lambda: "nothing installed" in _text(browser, "#versions tbody"))
    _until("the readiness badge", lambda: _text(browser, "#readiness") in ("ready", "not ready"))
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["procvision_console"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    # Scripts cannot read the session cookie.
    assert "procvision_console" not in browser.execute_script("return document.cookie")


def test_install_by_upload_shows_the_stages_and_reaches_installed(station: Station, browser: Any) -> None:
    browser.find_element(By.ID, "install-file").send_keys(str(station.zips["1.0.0"]))
    result = _until("the install to finish", lambda: (t := _text(browser, "#install-result"))
                    and not t.startswith("Installing") and t)
    assert "1.0.0: installed" in result, result
    stages = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#install-progress li")]
    assert stages[0] == "uploaded" and len(stages) >= 3, stages
    # Read in the page in one step: the overview replaces its rows every poll, so an element found
    # first and read after may already be gone.
    row_state = "const row = document.querySelector(arguments[0]); return row && row.getAttribute('data-state');"
    _until("the version row, installed", lambda: browser.execute_script(
        row_state, f'#versions tr[data-version="{NAME}@1.0.0"]') == "installed")
    _until("its size", lambda: re.search(r"\d+(\.\d)? (KB|MB|GB)", _text(
        browser, f'#versions tr[data-version="{NAME}@1.0.0"]')))


def test_activate_binds_the_pid_and_shows_its_worker(station: Station, browser: Any) -> None:
    _click("the activate button", lambda: _row_button(browser, "1.0.0", "activate"))
    pids = _until("the pid field", lambda: browser.find_element(By.ID, "confirm-pids"))
    pids.clear()
    pids.send_keys("P001")
    _confirm(browser, f"P001: none → {NAME} 1.0.0")
    _until("the binding", lambda: f"{NAME} 1.0.0" in _text(browser, '#bindings tr[data-pid="P001"]'))
    _until("the action's result", lambda: "done" in _text(browser, "#action-result"))
    worker = _until("a running worker with a process id", lambda: re.fullmatch(
        r"\d+", _text(browser, f'#workers tr[data-worker="{NAME}@1.0.0#0"] td.worker-pid')))
    assert int(worker.group(0)) > 0
    _until("readiness", lambda: _text(browser, "#readiness") == "ready")
    _shot(browser, "overview")


def test_try_it_draws_the_defect_rectangles_over_the_image(station: Station, browser: Any) -> None:
    _go(browser, "try")
    _until("P001 among the pids", lambda: "P001" in _text(browser, "#try-pid"))
    Select(browser.find_element(By.ID, "try-pid")).select_by_value("P001")
    browser.find_element(By.ID, "try-image").send_keys(str(station.images / "bright.png"))
    browser.find_element(By.ID, "try-run").click()
    rects = _until("the drawn defect", lambda: browser.find_elements(By.CSS_SELECTOR, "#try-view svg rect.defect"))
    assert len(rects) == 1
    drawn = {k: rects[0].get_attribute(k) for k in ("x", "y", "width", "height")}
    assert drawn == {"x": "0", "y": "0", "width": "10", "height": "10"}
    summary = _text(browser, "#try-summary")
    assert summary.startswith("OK NG") and "1 defect" in summary, summary
    result = json.loads(_text(browser, "#try-result"))
    assert result["data"]["result_status"] == "NG"
    _shot(browser, "try-it")


def test_recent_calls_show_the_thumbnail_and_rectangles(station: Station, browser: Any) -> None:
    _go(browser, "calls")
    tile = _until("the call's tile", lambda: browser.find_element(By.CSS_SELECTOR, "#calls-list .tile"))
    assert "OK NG" in tile.text and "P001" in tile.text and "1 rect" in tile.text
    image = tile.find_element(By.CSS_SELECTOR, "img")
    _until("the thumbnail to load", lambda: browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image))
    assert browser.execute_script("return arguments[0].naturalWidth", image) <= 160
    assert len(tile.find_elements(By.CSS_SELECTOR, "svg rect.defect")) == 1
    _shot(browser, "recent-calls")


def test_health_charts_count_the_call(station: Station, browser: Any) -> None:
    _go(browser, "health")
    calls = _until("the call count", lambda: re.match(r"(\d+) calls", _text(browser, "#health-calls")))
    assert int(calls.group(1)) >= 1
    assert "p99" in _text(browser, "#health-latency")
    _shot(browser, "health")


def test_install_by_drag_and_drop(station: Station, browser: Any) -> None:
    _go(browser, "overview")
    # A real file from disk, dropped on the zone the way a file manager drops it (a DataTransfer).
    browser.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.id = 'drag-source'; i.hidden = true;"
        "document.body.append(i);")
    browser.find_element(By.ID, "drag-source").send_keys(str(station.zips["2.0.0"]))
    browser.execute_script(
        "const dt = new DataTransfer(); dt.items.add(document.getElementById('drag-source').files[0]);"
        "const zone = document.getElementById('dropzone');"
        "zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));"
        "zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));")
    result = _until("the dropped install to finish", lambda: (t := _text(browser, "#install-result"))
                    and "2.0.0" in t and not t.startswith("Installing") and t)
    assert "2.0.0: installed" in result, result
    _until("the new row", lambda: browser.find_element(By.CSS_SELECTOR, f'#versions tr[data-version="{NAME}@2.0.0"]'))


def test_switch_moves_the_binding_to_the_new_version(station: Station, browser: Any) -> None:
    _click("the switch button", lambda: _row_button(browser, "2.0.0", "switch"))
    _confirm(browser, "P001: api_algo 1.0.0 → 2.0.0")
    _until("the binding to move", lambda: f"{NAME} 2.0.0" in _text(browser, '#bindings tr[data-pid="P001"]'))
    _until("the action's result", lambda: "done" in _text(browser, "#action-result"))
    _until("the new version's worker", lambda: re.fullmatch(
        r"\d+", _text(browser, f'#workers tr[data-worker="{NAME}@2.0.0#0"] td.worker-pid')))
    _shot(browser, "overview-after-switch")


def test_logs_follow_new_lines_through_the_filter(station: Station, browser: Any) -> None:
    _go(browser, "logs")
    _until("the 2.0.0 log", lambda: f"{NAME} 2.0.0" in _text(browser, "#log-version"))
    Select(browser.find_element(By.ID, "log-version")).select_by_value(f"{NAME}/2.0.0")
    browser.find_element(By.ID, "log-filter").send_keys("console-marker")
    _until("the filtered stream to follow", lambda: _text(browser, "#log-state") == "following"
           and browser.find_element(By.ID, "log-state").get_attribute("data-following")
           == f"{NAME}/2.0.0|console-marker"
           and browser.execute_script("return location.hash") == "#logs")
    with station.server.client() as api:
        for say in ("unrelated line", "console-marker 42"):
            answer = api.post("/execute", data={"pid": "P001", "user_params": json.dumps({"say": say})},
                              files={"image": ("a.png", png_bytes(), "image/png")})
            assert answer.status_code == 200, answer.text
    _until("the marker line", lambda: "console-marker 42" in _text(browser, "#log-lines"))
    assert "unrelated line" not in _text(browser, "#log-lines")
    _shot(browser, "logs")


def test_a_crashed_worker_shows_its_exit_code_and_stderr_tail(station: Station, browser: Any) -> None:
    _go(browser, "overview")
    with station.server.client() as api:
        answer = api.post("/execute", data={"pid": "P001", "user_params": json.dumps(
            {"say": "dying on purpose", "crash": True})}, files={"image": ("a.png", png_bytes(), "image/png")})
        assert answer.status_code == 502, answer.text
    row = f'#workers tr[data-worker="{NAME}@2.0.0#0"]'
    _until("the exit code", lambda: _text(browser, f"{row} td.last-exit") == "3")
    _until("the stderr tail", lambda: "dying on purpose" in _text(browser, f"{row} td.stderr-tail"))
    _until("the restart", lambda: browser.find_elements(By.CSS_SELECTOR, f"{row} td.state-running"))
    _shot(browser, "overview-after-crash")


def test_refused_action_shows_the_coded_error_in_plain_words(station: Station, browser: Any) -> None:
    _go(browser, "overview")
    _click("the activate button", lambda: _row_button(browser, "2.0.0", "activate"))
    pids = _until("the pid field", lambda: browser.find_element(By.ID, "confirm-pids"))
    pids.clear()
    pids.send_keys("NOT-A-PID")
    _confirm(browser, f"→ {NAME} 2.0.0")
    message = _until("the error", lambda: (t := _text(browser, "#action-result")) and "failed" in t and t)
    assert "NOT-A-PID" in message and re.search(r"\(error \d{4} [a-z_]+\)", message), message


def test_rollback_deactivate_and_uninstall(station: Station, browser: Any) -> None:
    _click("the rollback button",
           lambda: browser.find_element(By.CSS_SELECTOR, '#bindings tr[data-pid="P001"] .rollback'))
    _confirm(browser, f"P001: {NAME} 2.0.0 → the version it served before")
    _until("the binding to go back", lambda: f"{NAME} 1.0.0" in _text(browser, '#bindings tr[data-pid="P001"]'))
    _click("the deactivate button",
           lambda: browser.find_element(By.CSS_SELECTOR, '#bindings tr[data-pid="P001"] .deactivate'))
    _confirm(browser, f"P001: {NAME} 1.0.0 → none")
    _until("no binding", lambda: "no product is bound" in _text(browser, "#bindings"))
    _click("the uninstall button", lambda: _row_button(browser, "2.0.0", "uninstall"))
    _confirm(browser, f"{NAME} 2.0.0: ")
    _until("the row to go", lambda: not browser.find_elements(
        By.CSS_SELECTOR, f'#versions tr[data-version="{NAME}@2.0.0"]'))
    _until("the action's result", lambda: "done" in _text(browser, "#action-result"))


def test_sign_out_returns_to_the_sign_in_form(station: Station, browser: Any) -> None:
    browser.find_element(By.ID, "signout").click()
    _until("the sign-in form", lambda: browser.find_element(By.ID, "page-signin").is_displayed())
    browser.refresh()
    _until("the sign-in form after a reload", lambda: browser.find_element(By.ID, "page-signin").is_displayed())


def test_the_page_raised_no_script_error(browser: Any) -> None:
    # Refused requests (the wrong token, the refused activation) are logged as failed loads: expected.
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
    assert errors == []
