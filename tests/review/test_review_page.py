"""The review page in a real headless Chromium, opened from file://: one entry per clip, every
player loads its metadata with the right duration, the failed filter, keyboard navigation.

Needs Debian's ``chromium`` and ``chromium-driver`` (CI installs them) and selenium; skipped
with the reason when they are missing. A screenshot is kept under the test's tmp directory,
and copied to ``$AIVP_TEST_ARTIFACTS/review-page.png`` when that variable is set.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aivpbuild.api import Project
from tests.helpers import manifest, write_project
from tests.test_build import build

FPS = 8
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables on PATH, or None."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        pytest.skip("no chromium + chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,768", "--hide-scrollbars", "--mute-audio"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three one-second clips (T2V, I2V from the first's last frame, I2V from a file); the
    third is declared continuous with the second, which it is not, so its review fails."""
    root = tmp_path_factory.mktemp("page") / "p"
    write_project(root, manifest({
        "a": {"prompt": "A red kite over a beach <b>at noon</b>", "camera": "pan left"},
        "b": {"prompt": "The kite lands", "image": {"clip": "a", "frame": "last"}},
        "c": {"prompt": "A lighthouse", "image": "image/frames/c.png", "camera": "slow push-in",
              "continuity": True},
    }, defaults={"provider": "local", "resolution": "160x90", "duration": 1, "fps": FPS, "seed": 1}),
        {"image/frames/c.png": "png"})
    build(root)
    project = Project.load(root)
    assert [clip for clip, r in project.review().items() if not r["passed"]] == ["c"]
    return project.report()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def visible_ids(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.clip')].filter(c => c.offsetParent !== null)"
        ".map(c => c.dataset.id)")


def test_review_page_in_chromium(browser: Any, page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(page.as_uri())
    assert visible_ids(browser) == ["a", "b", "c"]

    def metadata() -> list[Any] | None:
        states = browser.execute_script(
            "return [...document.querySelectorAll('video')].map(v => [v.readyState, v.duration, "
            "v.error && v.error.code])")
        return states if all(s[0] >= 1 for s in states) else None

    states = wait_for(metadata)
    assert states is not None and len(states) == 3, states
    for ready, duration, error in states:
        assert error is None and ready >= 1
        assert abs(duration - 1.0) <= 1 / FPS, duration

    keys = ActionChains(browser)
    assert browser.execute_script("return document.activeElement.dataset.id") == "a"
    keys.send_keys("j").perform()
    assert browser.execute_script("return document.activeElement.dataset.id") == "b"
    keys.send_keys("j").send_keys("j").perform()  # stops at the last clip
    assert browser.execute_script("return document.activeElement.dataset.id") == "c"
    keys.send_keys("k").perform()
    assert browser.execute_script("return document.activeElement.dataset.id") == "b"

    keys.send_keys("f").perform()
    assert visible_ids(browser) == ["c"]
    assert browser.execute_script("return document.activeElement.dataset.id") == "c"
    shot = tmp_path / "review-page-failed.png"
    browser.save_screenshot(str(shot))
    browser.find_element("id", "failed-filter").click()
    assert visible_ids(browser) == ["a", "b", "c"]

    playing = "return !document.querySelector('.clip.current video').paused"
    keys.send_keys(" ").perform()  # space plays the current clip (c, focused before the click)
    assert wait_for(lambda: browser.execute_script(playing))
    keys.send_keys(" ").perform()
    assert not browser.execute_script(playing)
    assert visible_ids(browser) == ["a", "b", "c"]  # space did not press the filter button
    save_screenshot(browser, tmp_path)


def save_screenshot(driver: Any, tmp_path: Path) -> None:
    driver.execute_script("window.scrollTo(0, 0)")
    path = tmp_path / "review-page.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    artifacts = os.environ.get("AIVP_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(artifacts) / "review-page.png")
