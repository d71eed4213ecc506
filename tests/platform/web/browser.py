"""Helpers for the browser tests: the real app served on 127.0.0.1, Debian's Chromium
driven by Selenium through Debian's chromedriver, and a few steps every test takes.

``scripts/setup-browser.sh`` installs the browser, the driver and the Selenium client.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import BaseWSGIServer, make_server

from tests.support import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
WAIT_SECONDS = 10
"""seconds a step waits for the page it expects"""
DESKTOP = (1280, 900)
PHONE = (390, 844)
"""pixels: window sizes of the screenshots"""


def start_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    return webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))


class LiveServer:
    """The Flask app behind Werkzeug's threaded server on a free 127.0.0.1 port."""

    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


class Browser:
    """One Chromium session on one live server, with the steps tests repeat."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.settle()

    def settle(self) -> None:
        """Wait until the current document has loaded (a POST's 303 redirect included)."""
        WebDriverWait(self.driver, WAIT_SECONDS).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base_url)

    @property
    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def heading(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "h1").text)

    def control(self, label: str) -> WebElement:
        """The form control a visible ``<label>`` names (so every control must have one)."""
        for attempt in range(3):  # a redirect may still replace the document under us
            try:
                return self._control(label)
            except WebDriverException:  # stale element, or a node of a replaced document
                if attempt == 2:
                    raise
                self.settle()
        raise AssertionError("unreachable")

    def _control(self, label: str) -> WebElement:
        for element in self.driver.find_elements(By.TAG_NAME, "label"):
            if element.text.strip().rstrip("*").strip() == label:
                target = element.get_attribute("for")
                assert target, f"label {label!r} names no control"
                return self.driver.find_element(By.ID, target)
        raise AssertionError(f"no control labelled {label!r} on {self.path}")

    def fill(self, label: str, value: str) -> None:
        control = self.control(label)
        control.clear()
        control.send_keys(value)

    def choose(self, label: str, option_text: str) -> None:
        Select(self.control(label)).select_by_visible_text(option_text)

    def press(self, button_text: str) -> None:
        """Click the button with this text and wait for the next page."""
        buttons = [
            b
            for b in self.driver.find_elements(By.TAG_NAME, "button")
            if b.text.strip() == button_text
        ]
        assert buttons, f"no button {button_text!r} on {self.path}"
        self.follow(buttons[0])

    def follow_link(self, text: str) -> None:
        """Click the link with this text and wait for the page it leads to."""
        self.follow(self.driver.find_element(By.LINK_TEXT, text))

    def follow(self, element: WebElement) -> None:
        """Click a link or button and wait until the page it leads to has replaced this one
        and loaded (reading the page before that may read the old one, or a node of it)."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, WAIT_SECONDS).until(lambda d: _stale(old))
        self.settle()

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        self.open("/login")
        self.fill("Username", username)
        self.fill("Password", password)
        self.press("Sign in")

    def sign_out(self) -> None:
        self.press("Sign out")

    def flash(self) -> str:
        found = self.driver.find_elements(By.CSS_SELECTOR, ".flash")
        return " ".join(str(f.text) for f in found)

    def screenshot(self, name: str) -> Path:
        """Save the whole page (beyond the window, through the DevTools protocol) as PNG."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    @contextmanager
    def window(self, width: int, height: int) -> Iterator[None]:
        size = self.driver.get_window_size()
        self.driver.set_window_size(width, height)
        try:
            yield
        finally:
            self.driver.set_window_size(size["width"], size["height"])

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)


def _stale(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except WebDriverException:  # the old page is gone ("stale element"), or going: Chromium
        # then answers "unhandled inspector error" for a node of the document being replaced
        return True
    return False
