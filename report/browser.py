"""A headless Chromium for the page's screenshot and its tests: Debian's `chromium` and
`chromium-driver` packages, driven by Selenium (requirements.txt).

    sudo apt-get install chromium chromium-driver     # Debian, Ubuntu
"""

import contextlib
import os
import shutil

INSTALL = "install Debian's chromium and chromium-driver (sudo apt-get install chromium chromium-driver)"
WIDTH, HEIGHT = 1280, 900  # a laptop's window


class BrowserMissing(Exception):
    """No Chromium or no driver for it on this machine: the message says what to install."""


def programs() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or BrowserMissing naming what is missing and how to get it."""
    browser = shutil.which(os.environ.get("MICROGPT_CHROMIUM") or "chromium") or shutil.which("chromium-browser")
    driver = shutil.which(os.environ.get("MICROGPT_CHROMEDRIVER") or "chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    if missing:
        raise BrowserMissing(f"no {' and no '.join(missing)} on this machine: {INSTALL}")
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserMissing("selenium is not installed: pip install -r requirements.txt") from None
    return browser, driver


@contextlib.contextmanager
def chromium(width: int = WIDTH, height: int = HEIGHT):
    """A headless Chromium (a Selenium driver) at a laptop's window size, its console kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = programs()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()
