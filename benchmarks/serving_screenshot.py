"""docs/serving.png and docs/serving-attribute.png: the page of `toolkit serve` in
headless Chromium, as a person leaves it: text streamed from the quick start's model,
then a text attributed by a small author-lms run (the page as it is after each).

    python benchmarks/serving_screenshot.py [GENERATOR_RUN] [--output docs/serving.png]

GENERATOR_RUN defaults to runs/tiny (the README's quick start; trained when missing).
The author-lms run is the three-author one the tests train (tests/serving_runs.py),
trained into a temporary folder. Needs Debian's chromium and chromium-driver, and
selenium (the test extra).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="runs/tiny")
    parser.add_argument("--output", default="docs/serving.png")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.serving_runs import author_text, train_author_lms

    if not Path(args.run, "model.keras").is_file():
        subprocess.run([sys.executable, "-m", "toolkit", "train", "configs/tiny.toml",
                        "--run-dir", args.run, "--overwrite"], check=True, cwd=ROOT)
    folder = Path(tempfile.mkdtemp(prefix="serving-screenshot-"))
    server = None
    try:
        authors = train_author_lms(folder)
        server = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", args.run,
                                   str(authors), "--port", "0"], stdout=subprocess.PIPE,
                                  text=True, cwd=ROOT)
        url = re.search(r"http://[\d.]+:\d+", server.stdout.readline()).group(0)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1200,900"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                   options=options)
        try:
            browser.get(url + "/")
            wait = WebDriverWait(browser, 60)
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#run option")) == 2)
            temperature = browser.find_element(By.ID, "temperature")
            temperature.clear()
            temperature.send_keys("0.6")
            browser.find_element(By.ID, "generate").click()  # the run's own prime
            wait.until(lambda b: "tokens, seed" in b.find_element(By.ID, "write-meta").text)
            written = ROOT / args.output
            browser.save_screenshot(str(written))
            Select(browser.find_element(By.ID, "run")).select_by_value("authors")
            browser.find_element(By.ID, "text").send_keys(author_text("bob", 90, 3))
            browser.find_element(By.ID, "attribute-button").click()
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 3)
            browser.save_screenshot(str(written.with_name(f"{written.stem}-attribute.png")))
        finally:
            browser.quit()
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {args.output} and its -attribute.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
