"""The search page in a real browser: Debian's chromium, driven by Selenium, against `imgsearch serve`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,860",
)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) drives the browser")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="imgsearch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))  # never a downloaded browser
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import make_catalog
    from test_serve import start_server

    catalog = make_catalog(tmp_path_factory.mktemp("browser") / "photos")
    proc, url = start_server(catalog)
    yield catalog, url
    proc.terminate()
    proc.wait(timeout=20)


def cards(driver) -> list[str]:
    """File names of the result cards, in rank order, once their thumbnails have loaded."""
    return driver.execute_script(
        """const cards = [...document.querySelectorAll('.card')];
           const loaded = (c) => { const i = c.querySelector('img'); return i.complete && i.naturalWidth; };
           if (!cards.every(loaded)) return null;
           return cards.map(c => c.querySelector('.title').title.split('/').pop());"""
    )


def wait_for(driver, predicate, what: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d), message=what)


def test_search_vote_and_upload_in_a_real_browser(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    catalog, url = server
    browser.get(url + "/")
    wait_for(browser, lambda d: "items in" in d.find_element(By.ID, "status").text, "health answered")
    box = browser.find_element(By.ID, "text")
    box.send_keys("a motorcycle", Keys.ENTER)
    before = wait_for(
        browser, lambda d: (c := cards(d)) and len(c) == 8 and c, "thumbnails for the text query"
    )
    assert before[0].startswith("motorcycle")

    target = before[-1]  # 👍 on the last result: it must climb
    browser.find_elements(By.CSS_SELECTOR, ".card")[-1].find_element(By.CSS_SELECTOR, ".like").click()
    after = wait_for(browser, lambda d: (c := cards(d)) and c != before and c, "a new ranking after 👍")
    assert after.index(target) < before.index(target)
    assert "👍" in browser.find_element(By.ID, "query").text  # the like shows as a chip
    liked = browser.find_elements(By.CSS_SELECTOR, ".card.liked")
    assert len(liked) == 1

    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].hidden = false", upload)  # a file input hidden inside its label
    upload.send_keys(str(catalog / "coffee.png"))
    found = wait_for(
        browser, lambda d: (c := cards(d)) and c[0] == "coffee.png" and c, "the upload finds itself"
    )
    assert found[0] == "coffee.png"
    shot = tmp_path / "serve.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_filter_fields_reach_the_api(browser, server):
    """The page's filter fields are sent as the --batch keys: none of these photos has GPS, so a
    place alone finds nothing and the status counts the photos left out without EXIF."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, url = server
    browser.get(url + "/")
    wait_for(browser, lambda d: "items in" in d.find_element(By.ID, "status").text, "health answered")
    browser.find_element(By.ID, "place").send_keys("Lisbon", Keys.ENTER)
    wait_for(
        browser, lambda d: "8 without EXIF left out" in d.find_element(By.ID, "status").text, "no-EXIF count"
    )
    assert browser.find_element(By.CSS_SELECTOR, ".empty").text == "No results."
    browser.find_element(By.ID, "taken_after").send_keys("2019-13", Keys.ENTER)
    wait_for(browser, lambda d: "YYYY-MM" in d.find_element(By.ID, "status").text, "a bad date, one line")


def test_a_card_shows_the_words_read_off_its_photo(browser, tmp_path):
    """With `index --ocr`, a card carries the words read off its photo: why `--text` found it."""
    pytest.importorskip("rapidocr_onnxruntime", reason="the ocr extra (rapidocr-onnxruntime)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from test_ocr import sign
    from test_serve import start_server

    from imgsearch.embed.job import EmbedOptions
    from imgsearch.indexing.build import index_folder

    folder = tmp_path / "shelf"
    folder.mkdir()
    sign(folder / "carton.png", "OATLY")
    sign(folder / "juice.png", "TROPICANA")
    index_folder(folder, EmbedOptions(ocr=True))
    proc, url = start_server(folder)
    try:
        browser.get(url + "/")
        wait_for(browser, lambda d: "items in" in d.find_element(By.ID, "status").text, "health answered")
        browser.find_element(By.ID, "text").send_keys("oatly", Keys.ENTER)
        wait_for(browser, lambda d: (c := cards(d)) and c[0] == "carton.png", "the carton first")
        tags = browser.find_elements(By.CSS_SELECTOR, ".card")[0].find_element(By.CSS_SELECTOR, ".tags").text
        assert "OATLY" in tags.upper()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
