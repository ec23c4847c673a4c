"""The search page end to end in headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

Skipped, with the reason, where chromium, chromedriver or selenium is absent. Install on Debian with
``apt-get install -y chromium chromium-driver`` and ``pip install selenium``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the `search` extra (fastapi) is not installed")
pytest.importorskip("lancedb", reason="the `search` extra (lancedb) is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1280,900"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn in a thread on a free loopback port; stopped with ``should_exit``."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import urllib.request

        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as res:
                    if res.status == 200:
                        return f"http://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not become ready in 30 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def open_browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from polymodal.search.service import create_app
    from tests.search_fixtures import build_test_index

    index = build_test_index(tmp_path_factory.mktemp("page"))
    with ServerThread(create_app(index, background=False)) as url:
        yield url


def test_page_searches_filters_and_shows_photos(base_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = open_browser()
    try:
        driver.get(base_url + "/")
        wait = WebDriverWait(driver, 20)
        wait.until(ec.presence_of_element_located((By.ID, "filter-gender")))
        driver.find_element(By.ID, "q").send_keys("navy blue shirt")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: "results" in d.find_element(By.ID, "status").text)
        names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".card .name")]
        assert len(names) == 12 and "Navy Blue" in names[0] and "Shirt" in names[0]
        scores = [float(e.text.split()[1]) for e in driver.find_elements(By.CSS_SELECTOR, ".card .score")]
        assert scores == sorted(scores, reverse=True)
        # every photo actually loaded (decoded with a non-zero width)
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"))

        Select(driver.find_element(By.ID, "filter-gender")).select_by_visible_text("Women")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text == "5 results")
        attrs = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".card .attrs")]
        assert attrs and all(a.startswith("Women") for a in attrs)
        assert "Navy Blue" in driver.find_element(By.CSS_SELECTOR, ".card .name").text

        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # an empty query is refused on the page, without a request
        driver.find_element(By.ID, "q").clear()
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: "type a query" in d.find_element(By.ID, "status").text)
    finally:
        driver.quit()


def test_page_shows_server_errors(base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser()
    try:
        driver.get(base_url + "/")
        driver.find_element(By.ID, "q").send_keys("x" * 150)
        # the input's maxlength is 200; force a longer one to see the server's 400 on the page
        driver.execute_script("document.getElementById('q').removeAttribute('maxlength');"
                              "document.getElementById('q').value = 'y'.repeat(300);")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 20).until(lambda d: "longer than 200" in d.find_element(By.ID, "status").text)
        assert driver.find_elements(By.CSS_SELECTOR, ".card") == []
    finally:
        driver.quit()


def test_page_searches_by_uploaded_photo(tmp_path_factory: pytest.TempPathFactory) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from polymodal.search.service import create_app
    from tests.search_fixtures import ColourImageEncoder, build_test_index

    root = tmp_path_factory.mktemp("upload")
    index = build_test_index(root)
    photo = root / "red.png"
    Image.new("RGB", (48, 48), (205, 25, 30)).save(photo)
    with ServerThread(create_app(index, background=False, encoder=ColourImageEncoder())) as url:
        driver = open_browser()
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 20)
            wait.until(ec.presence_of_element_located((By.ID, "filter-gender")))
            driver.find_element(By.ID, "image").send_keys(str(photo))
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: "results" in d.find_element(By.ID, "status").text)
            first = driver.find_element(By.CSS_SELECTOR, ".card .attrs").text
            assert first.endswith("Red")  # the photo's colour, no text given
        finally:
            driver.quit()
