"""A headless Chromium driven by Selenium: ``make demo``'s screenshots, the browser tests and the
page-load bench use the same one.

It is Debian's ``chromium`` with its ``chromium-driver`` (``make install`` installs both when
missing, on Debian as root; :data:`INSTALL_HINT` says how elsewhere). Nothing is downloaded here:
the driver's path is given to Selenium, so Selenium Manager never fetches a browser or driver.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

#: Where to look, in order (``$PMRS_CHROMIUM`` / ``$PMRS_CHROMEDRIVER`` first when set).
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
INSTALL_HINT = ("a headless Chromium and its driver are needed: on Debian/Ubuntu `apt-get install chromium "
                "chromium-driver` (as root; `make install` does it), elsewhere install Chromium or Chrome "
                "and the matching chromedriver and put both on PATH (or set $PMRS_CHROMIUM and $PMRS_CHROMEDRIVER)")
#: The views ``make demo`` photographs and the bench times: (name, path); ``{user}`` and
#: ``{song}`` are filled in.
VIEWS = (("listener", "/?user={user}"), ("song", "/songs/{song}"), ("map", "/map"), ("lab", "/lab"),
         ("upload", "/upload"))


def find_browser() -> tuple[str, str] | None:
    """``(browser, driver)`` executables, or ``None`` when either is missing."""
    browser = os.environ.get("PMRS_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = os.environ.get("PMRS_CHROMEDRIVER") or next(filter(None, map(shutil.which, DRIVERS)), None)
    return (browser, driver) if browser and driver else None


def headless(width: int = 1280, height: int = 900):
    """A headless Chromium WebDriver (audio muted but playable without a gesture);
    ``RuntimeError`` with :data:`INSTALL_HINT` when there is none."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    browser, driver = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def load_ms(driver, url: str) -> float:
    """Open ``url`` and return its load time in ms (Navigation Timing: from the start of the
    navigation to the end of the load event, so the HTML, CSS, script and images are in)."""
    driver.get(url)
    for _ in range(100):
        ms = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n && n.loadEventEnd > 0 ? n.loadEventEnd - n.startTime : null;")
        if ms is not None:
            return float(ms)
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not finish loading")


def _settle(driver, timeout_s: float = 10.0) -> None:
    """Wait (at most ``timeout_s``) for what a page fills in after loading: the lab's live figures."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and driver.execute_script(
            "const f = document.querySelector('#live-figures'); return f !== null && !f.dataset.updated;"):
        time.sleep(0.1)


def screenshots(base_url: str, out_dir: str | os.PathLike, user: str, song: str,
                prefix: str = "web-") -> list[Path]:
    """PNG screenshots of :data:`VIEWS` into ``out_dir`` (``web-listener.png``, ...); returns the
    files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    driver = headless()
    written = []
    try:
        for name, path in VIEWS:
            load_ms(driver, base_url + path.format(user=user, song=song))
            _settle(driver)
            target = out / f"{prefix}{name}.png"
            tmp = target.with_name(f".{target.stem}.partial.png")
            driver.save_screenshot(str(tmp))
            os.replace(tmp, target)
            written.append(target)
    finally:
        driver.quit()
    return written
