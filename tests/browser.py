"""Headless Debian chromium driven through its chromedriver with Selenium, never a download.

Used by the dashboard's browser tests and by benchmarks/dashboard_load.py. Selenium Manager
would fetch a browser or driver from the network; `SE_OFFLINE` and explicit paths keep it to
the system's `chromium` and `chromedriver` (installed by `scripts/test`).
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def available() -> str | None:
    """Why no browser can be driven here, or None when one can."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    return None


def chromium(width: int = 1280, height: int = 900) -> WebDriver:
    """A headless chromium window of `width`×`height`, its console log readable."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        # Root in CI and containers: chromium refuses its sandbox there.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def console_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (CSP violations and script errors included)."""
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call] # untyped in Selenium
    return [e["message"] for e in entries if e["level"] == "SEVERE"]
