"""Remake docs/serve.png: the search page on scikit-image's sample photos (no shared data).

PYTHONPATH=. python docs/make_screenshot.py   # needs chromium, chromium-driver, selenium
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
NAMES = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "horse.png", "brick.png", "grass.png", "coins.png",
    "camera.png", "logo.png",
)  # fmt: skip


def main() -> None:
    import skimage
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from test_browser import CHROMIUM, DRIVER, FLAGS

    from imgsearch.indexing.build import index_folder
    from imgsearch.embed.job import EmbedOptions

    work = Path(tempfile.mkdtemp(prefix="imgsearch-shot-"))
    folder = work / "photos"
    folder.mkdir()
    for name in NAMES:
        shutil.copy2(Path(skimage.__file__).parent / "data" / name, folder / name)
    index_folder(folder, EmbedOptions())
    from test_serve import start_server

    proc, url = start_server(folder)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={work / 'profile'}", "--window-size=1100,760"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    try:
        driver.get(url + "/")
        time.sleep(1)
        driver.find_element(By.ID, "text").send_keys("a motorbike in a garage", Keys.ENTER)
        time.sleep(2)
        driver.find_elements(By.CSS_SELECTOR, ".card .like")[1].click()
        time.sleep(3)
        driver.save_screenshot(str(work / "raw.png"))
    finally:
        driver.quit()
        proc.terminate()
    img = Image.open(work / "raw.png").convert("RGB")
    img.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(ROOT / "docs" / "serve.png", optimize=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
