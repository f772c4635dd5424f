"""What a person sees: TensorBoard logs, curves, samples, and the HTML report in a real
headless Chromium."""

import json
import os
import re
import shutil

import pytest

from tests.conftest import write_tiny_config
from toolkit.cli import main


@pytest.fixture(scope="module")
def reported_runs(tmp_path_factory):
    """A generator run and an attribution run, trained and evaluated once."""
    folder = tmp_path_factory.mktemp("report")
    lm_config = write_tiny_config(folder, "epochs = 2\nlearning_rate = 0.01\nsample_length = 40",
                                  '[generate]\nprime = "To be"')
    corpus = folder / "authors.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t * 60, "label": a})
                                for a, t in (("abc", "abc cab bca "), ("xyz", "xyz zyx yxz "))))
    (folder / "cls.toml").write_text(f"""
[corpus]
use = "jsonl"
path = "{corpus}"
[sequences]
use = "passages"
length = 24
[core]
units = 8
[head]
use = "classifier"
[train]
epochs = 2
learning_rate = 0.02
""")
    assert main(["train", str(lm_config), "--run-dir", str(folder / "lm")]) == 0
    assert main(["train", str(folder / "cls.toml"), "--run-dir", str(folder / "cls")]) == 0
    assert main(["evaluate", str(folder / "cls")]) == 0
    return folder / "lm", folder / "cls"


def test_training_writes_tensorboard_logs_curves_and_samples(reported_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    lm, cls = reported_runs
    scalars = EventAccumulator(str(lm / "logs" / "train")).Reload().Tags()["tensors"] + \
        EventAccumulator(str(lm / "logs" / "train")).Reload().Tags()["scalars"]
    for name in ("epoch_loss", "epoch_nats", "epoch_learning_rate", "epoch_tokens_per_second"):
        assert name in scalars, scalars
    validation = EventAccumulator(str(lm / "logs" / "validation")).Reload().Tags()
    assert "epoch_val_nats" in validation["tensors"] + validation["scalars"] or \
        "epoch_nats" in validation["tensors"] + validation["scalars"]
    text = EventAccumulator(str(lm / "logs" / "samples")).Reload().Tags()["tensors"]
    assert "sample" in text
    samples = json.loads((lm / "samples.json").read_text())
    assert [s["epoch"] for s in samples] == [0, 1]
    assert all(s["text"].startswith("To be") for s in samples)
    for run in (lm, cls):
        assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (cls / "samples.json").exists()


def test_a_report_of_several_runs_compares_them(reported_runs, tmp_path, capsys):
    output = tmp_path / "both.html"
    assert main(["report", *map(str, reported_runs), "--output", str(output)]) == 0
    page = output.read_text()
    assert "Side by side" in page and page.count('<section class="run"') == 2
    compare = page.split('<table class="compare">')[1].split("</table>")[0]
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in compare.split("<tr>")[2:]]
    # each validation figure names its unit; tokens/s is a whole number with separators
    assert cells[0][4].endswith(" nats/token"), cells
    assert cells[1][4].endswith((" accuracy", " macro-F1")), cells
    assert all(re.fullmatch(r"\d{1,3}(,\d{3})*", row[7]) for row in cells), cells
    assert "char n-grams" in page and "after epoch 2" in page
    # two runs' curves, the attribution run's confusion matrix and reliability diagram
    assert page.count("data:image/png;base64,") == 4
    # self-contained: nothing fetched (the images' base64 may spell "http" by chance)
    markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "http" not in markup.replace("http-equiv", "")


def chromium_driver():
    """A headless Chromium through Selenium, or a skip (a failure under CI, or where
    ``TOOLKIT_REQUIRE_BROWSER`` asks for it)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing = "selenium is not installed"
    if not (chromium and driver):
        missing = "Debian's chromium and chromium-driver are not installed"
    if missing:
        if os.environ.get("TOOLKIT_REQUIRE_BROWSER") or os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1200,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_report_renders_in_a_real_browser(reported_runs, tmp_path):
    lm, cls = reported_runs
    # A sample without spaces (as the alphabet model writes) must wrap, not run off the page.
    shutil.copytree(lm, tmp_path / "lm")
    samples = json.loads((tmp_path / "lm" / "samples.json").read_text())
    samples[-1]["text"] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 80
    (tmp_path / "lm" / "samples.json").write_text(json.dumps(samples))
    output = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "lm"), str(cls), "--output", str(output)]) == 0
    browser = chromium_driver()
    try:
        browser.get(output.as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) == 4 and all(done and width > 300 for _, done, width in images), \
            images
        rows = browser.execute_script(
            "return Array.from(document.querySelectorAll('table')).map("
            "t => [t.className, t.rows.length, t.getBoundingClientRect().height])")
        classes = {name: (count, height) for name, count, height in rows}
        # the attribution table: a header, then LSTM, calibrated LSTM, n-grams, Burrows'
        # and Cosine Delta, ensemble
        assert classes["compare"][0] == 3 and classes["attribution"][0] == 7
        assert all(height > 0 for _, height in classes.values())
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        overflow = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], f"the page scrolls sideways: {overflow}"
        # the confusion matrix and the reliability diagram are shown at the same width
        widths = browser.execute_script(
            "return Array.from(document.querySelectorAll('div.pair img')).map("
            "i => i.getBoundingClientRect().width)")
        assert len(widths) == 2 and abs(widths[0] - widths[1]) < 2, widths
        if os.environ.get("TOOLKIT_SCREENSHOT"):
            browser.save_screenshot(os.environ["TOOLKIT_SCREENSHOT"])
    finally:
        browser.quit()


def test_a_progress_line_every_few_seconds_when_output_is_not_a_terminal(monkeypatch):
    import io

    from toolkit.training import callbacks

    clock = iter([100.0, 104.0, 111.0, 112.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    line = callbacks.ProgressLine(10, epochs=3, steps=21, positions_per_batch=100, stream=out)
    line.on_epoch_begin(1)
    line.on_train_batch_end(0, {"loss": 2.5})   # t=100: the first step only starts the clock
    line.on_train_batch_end(4, {"loss": 2.4})   # t=104: under 10 s since, nothing
    line.on_train_batch_end(10, {"loss": 2.25})  # t=111: 10 steps in 11 s
    line.on_train_batch_end(11, {"loss": 2.2})  # t=112: under 10 s since the last line
    assert out.getvalue() == ("epoch 2/3: batch 11/21, loss 2.2500, 91 tokens/s, "
                              "0:11 left in the epoch\n")
