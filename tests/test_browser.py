"""The caption pages in a real headless browser (issue 14 point 6): Debian's Chromium driven
by Selenium through chromedriver (`.ci/run` installs both when /usr/bin/chromium is missing).

One browser for the module. The pages are what `caption_video` writes (gallery
`render_video_result` + `write_index`) for a tiny H.264 mp4 and a tiny MJPEG avi (which
browsers cannot play: its page plays the H.264 copy). Checks: clicking an event seeks the
video to exactly that event's start and the caption box shows that event's caption (the seek
target used to be rounded to 3 decimals, before the start, so the previous event's caption
showed); the avi page really plays its copy; no page logs a console error (SEVERE); the
page renders (not blank). Skips, naming what is missing, without Chromium, chromedriver or
Selenium.
"""
from __future__ import annotations

import io
import os

import pytest

from captioner_jax.visualization.gallery import render_video_result, write_index

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The first event starts at a time that 3 decimals round down (to 0.432, inside event 2).
START = 0.4321234
EVENTS = [{"timestamp": [START, 1.6], "sentence": "A red square appears."},
          {"timestamp": [0.0, 0.4321], "sentence": "The screen is dark."}]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1000,900"]


def _missing() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (requirements.txt)")
    return missing


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip("no headless browser check: missing " + ", ".join(missing) + " (install: "
                    "apt-get install chromium chromium-driver; pip install selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(15)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A caption_video-like output folder: html/{clip_mp4,clip_avi}.html + index.html."""
    from tests.shard_fixtures import write_mp4
    from tests.test_visualization_playable import _write_mjpeg_avi

    root = tmp_path_factory.mktemp("site")
    (root / "videos").mkdir()
    write_mp4(root / "videos" / "clip_mp4.mp4", 0, 60)  # 2 s at 30 fps, H.264
    _write_mjpeg_avi(root / "videos" / "clip_avi.avi")  # 1.5 s at 20 fps, MJPEG
    out = str(root / "html")
    pages = [render_video_result(out, name, EVENTS, video_path=str(root / "videos" / file),
                                 num_thumbnails=2)
             for name, file in (("clip_mp4", "clip_mp4.mp4"), ("clip_avi", "clip_avi.avi"))]
    assert [p["browser_copy"] is not None for p in pages] == [False, True]
    index = write_index(out, pages, str(root / "captions.json"))
    return root / "html", index


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _wait(driver, script: str, what: str, timeout: float = 10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(script), message=what)


# Records the time the page's click handler assigns to currentTime (`asked`, the exact
# double), the position the browser seeks to (`target`, at `seeking`) and, once there
# (`seeked`), the position and the caption box. The handler also calls play(): a no-op here
# so playback does not move the position between the seek and the check.
_RECORD_SEEK = """
var video = document.getElementById("dvc-video");
window.dvcSeek = {};
var clock = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, "currentTime");
Object.defineProperty(video, "currentTime", {
  configurable: true,
  get: function () { return clock.get.call(video); },
  set: function (t) { window.dvcSeek.asked = t; clock.set.call(video, t); }
});
video.play = function () { return Promise.resolve(); };
video.addEventListener("seeking", function () {
  window.dvcSeek.target = video.currentTime;
}, {once: true});
video.addEventListener("seeked", function () {
  window.dvcSeek.done = {time: video.currentTime,
                         caption: document.getElementById("dvc-now").textContent};
}, {once: true});
"""


@pytest.mark.parametrize("name", ["clip_mp4", "clip_avi"])
def test_clicking_an_event_seeks_to_its_start_and_shows_its_caption(browser, site, name):
    from selenium.webdriver.common.by import By

    folder, _ = site
    browser.get((folder / f"{name}.html").as_uri())
    # The video (the avi page: its H.264 copy) loads: Chromium can play it.
    _wait(browser, "return document.getElementById('dvc-video').readyState >= 1",
          f"{name}: the video never loaded")
    src = browser.execute_script("return document.getElementById('dvc-video').currentSrc")
    assert src.endswith("clip_avi_browser.mp4" if name == "clip_avi" else "clip_mp4.mp4")
    assert browser.find_element(By.ID, "dvc-video-error").get_attribute("hidden") is not None
    browser.execute_script(_RECORD_SEEK)
    item = browser.find_element(By.XPATH, '//ol[contains(@class, "pred")]/li'
                                          '[span[@class="sentence"]="A red square appears."]')
    item.click()
    seek = _wait(browser, "return window.dvcSeek.done && window.dvcSeek",
                 f"{name}: no seeked event")
    assert seek["asked"] == START  # exactly the event's start, not 0.432
    # Chromium's media clock counts whole microseconds (0.432123, a hair before the start:
    # the page's snap to its seek target still shows this event's caption).
    assert abs(seek["target"] - START) <= 1e-6 and abs(seek["done"]["time"] - START) <= 1e-6
    assert seek["done"]["caption"] == "1. A red square appears."
    assert "active" in item.get_attribute("class")
    assert _severe(browser) == []


def test_index_and_pages_load_without_errors(browser, site):
    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    folder, index = site
    browser.get((folder / "index.html").as_uri())
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "li a")]
    assert [os.path.basename(h) for h in links] == ["clip_mp4.html", "clip_avi.html"]
    assert _severe(browser) == []
    browser.get(links[1])
    assert browser.find_element(By.ID, "dvc-strip").is_displayed()  # the avi's frame strip
    assert browser.find_element(By.ID, "dvc-copy-note").is_displayed()
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"))
    assert shot.std() > 5  # rendered, not a blank page
    assert _severe(browser) == []

