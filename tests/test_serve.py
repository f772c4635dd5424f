"""`toolkit serve`: every endpoint against a real uvicorn on a loopback port, batching,
the bad-request matrix, stopping on a signal, and the page in a real headless Chromium."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLE_TEXT
from tests.serving_runs import author_text, train_author_lms, train_generator
from tests.test_report import chromium_driver
from toolkit.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    return train_generator(folder), train_author_lms(folder)


@pytest.fixture(scope="module")
def server(runs):
    """The two runs behind a real uvicorn in a thread, on a free loopback port."""
    import uvicorn

    from toolkit.serving.server import App, Settings, bind, run_names

    app = App(run_names([str(path) for path in runs]),
              Settings(max_length=500, max_body=20_000, timeout=30.0))
    app.start()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]},
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uvicorn_server.started
    yield f"http://127.0.0.1:{port}", app
    uvicorn_server.should_exit = True
    thread.join(15)
    app.stop()
    sock.close()


def post(url, path, body, **kwargs):
    return httpx.post(url + path, json=body, timeout=60, **kwargs)


def test_health_and_runs_describe_what_is_served(server):
    url, _ = server
    health = httpx.get(url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok",
                                                           "runs": ["hamlet", "authors"]}
    runs = {run["name"]: run for run in httpx.get(url + "/runs").json()["runs"]}
    assert runs["hamlet"]["kind"] == "generator" and runs["hamlet"]["authors"] == []
    assert runs["hamlet"]["unit"] == "characters" and runs["hamlet"]["generates"]
    assert runs["hamlet"]["metrics"]["validation"]["nats_per_token"] > 0
    assert runs["authors"]["kind"] == "author-lms"
    assert runs["authors"]["authors"] == ["ann", "bob", "cy"]
    assert runs["authors"]["attributes"] and runs["authors"]["generates"]


def test_generate_returns_text_and_the_same_text_for_the_same_seed(server):
    url, _ = server
    body = {"run": "hamlet", "prime": "To be", "length": 120, "temperature": 0.8, "seed": 7}
    first, second = post(url, "/generate", body), post(url, "/generate", body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["prime"] == "To be" and answer["seed"] == 7 and answer["tokens"] == 120
    assert len(answer["text"]) == 120 and answer["text"] == second.json()["text"]
    assert set(answer["text"]) <= set(SAMPLE_TEXT)
    other = post(url, "/generate", {**body, "seed": 8}).json()["text"]
    assert other != answer["text"]
    # greedy: the same whatever the seed
    greedy = [post(url, "/generate", {**body, "temperature": 0, "seed": s}).json()["text"]
              for s in (1, 2)]
    assert greedy[0] == greedy[1]


def test_an_author_of_an_author_lms_run_writes_in_their_style(server):
    url, _ = server
    answer = post(url, "/generate", {"run": "authors", "author": "bob", "prime": "A dog",
                                     "length": 200, "temperature": 0.3, "seed": 1})
    assert answer.status_code == 200, answer.text
    text = answer.json()["text"]
    # bob's words are dog, fog, log, bog: his letters, not ann's "cat" or cy's "see"
    assert text.count("o") > text.count("e"), text


def test_generation_streams_as_server_sent_events(server):
    url, _ = server
    body = {"run": "hamlet", "prime": "To be", "length": 100, "seed": 3, "stream": True}
    events = []
    with httpx.stream("POST", url + "/generate", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for block in response.iter_text():
            events.append(block)
    parsed = [(re.search(r"^event: (\w+)$", e, re.M).group(1),
               json.loads(re.search(r"^data: (.*)$", e, re.M).group(1)))
              for e in "".join(events).split("\n\n") if e.strip()]
    kinds = [kind for kind, _ in parsed]
    chunk = server[1].runs["hamlet"].batchers[None].chunk
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("text") >= 100 // chunk
    streamed = "".join(data["text"] for kind, data in parsed if kind == "text")
    assert streamed == parsed[-1][1]["text"]
    # the same text as asked for whole, and Accept: text/event-stream streams too
    whole = post(url, "/generate", {**body, "stream": False}).json()["text"]
    assert whole == streamed
    accepted = httpx.post(url + "/generate", json={**body, "stream": False}, timeout=60,
                          headers={"Accept": "text/event-stream"})
    assert accepted.headers["content-type"].startswith("text/event-stream")


def test_seeded_texts_are_the_same_alone_and_among_31_others(server):
    url, app = server
    body = {"run": "hamlet", "prime": "To be, or", "length": 150, "temperature": 1.0,
            "top_k": 20, "top_p": 0.95}
    alone = {seed: post(url, "/generate", {**body, "seed": seed}).json()["text"]
             for seed in (11, 12)}
    batcher = app.runs["hamlet"].batchers[None]
    assert batcher.jit_compile  # the shipped loop: XLA, whose products depend on the shape
    steps_before, rows_before = batcher.steps, batcher.rows
    start = threading.Barrier(32)

    def request(seed):
        start.wait()
        return post(url, "/generate", {**body, "seed": seed}).json()["text"]

    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(request, range(11, 43)))
    assert together[0] == alone[11] and together[1] == alone[12]
    assert len(set(together)) == 32
    # 32 requests of 150 tokens shared chunks: far fewer chunk calls than rows carried
    steps, rows = batcher.steps - steps_before, batcher.rows - rows_before
    assert rows == 32 * -(-150 // batcher.chunk)
    assert steps <= rows / 8, (steps, rows)


def test_a_prime_padded_for_the_compiled_loop_sets_the_state_it_would_unpadded(server):
    import numpy as np
    import tensorflow as tf

    from toolkit.serving.batcher import padded

    _, app = server
    batcher = app.runs["hamlet"].batchers[None]
    ids = np.array([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], np.int32)  # 11 ids: 5 padding steps
    assert padded(ids).shape == (1, 16) and (padded(ids)[0, :5] == 0).all()
    states = batcher._prime(tf.constant(padded(ids)), batcher.model.initial_state(1))
    _, expected = batcher.model(tf.constant(ids[None, :]), batcher.model.initial_state(1))
    for state, want in zip(states, expected):
        np.testing.assert_allclose(np.asarray(state), np.asarray(want), atol=1e-5, rtol=0)


def test_attribute_answers_what_the_command_answers(server, runs, tmp_path, capsys):
    url, _ = server
    text = author_text("cy", 120, 99)
    answer = post(url, "/attribute", {"run": "authors", "text": text})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    (tmp_path / "text").write_text(text)
    capsys.readouterr()
    assert main(["attribute", str(runs[1]), str(tmp_path / "text"), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)[0]
    assert result["answer"] == expected["answer"] == "cy"
    assert [r["author"] for r in result["ranking"]] == [r["author"] for r in expected["ranking"]]
    for mine, theirs in zip(result["ranking"], expected["ranking"]):
        assert abs(mine["probability"] - theirs["probability"]) < 1e-6
    assert result["calibrated"] and result["passages"] == expected["passages"]
    # the n-gram model stacked with the LSTM, as `attribute --model ensemble`
    capsys.readouterr()
    stacked = post(url, "/attribute", {"run": "authors", "text": text, "model": "ensemble"})
    assert main(["attribute", str(runs[1]), str(tmp_path / "text"), "--json", "--model",
                 "ensemble"]) == 0
    expected = json.loads(capsys.readouterr().out)[0]
    assert stacked.status_code == 200 and stacked.json()["ranking"] == expected["ranking"]


# Each bad request: the body (or raw bytes), the status and the field its error names.
BAD_REQUESTS = [
    ("/generate", b"{not json", 400, "body"),
    ("/generate", b"\xff\xfe", 400, "body"),
    ("/generate", [1, 2], 400, "body"),
    ("/generate", {"run": "hamlet", "lenght": 5}, 400, "lenght"),
    ("/generate", {"run": "hamlet", "length": "long"}, 400, "length"),
    ("/generate", {"run": "hamlet", "length": True}, 400, "length"),
    ("/generate", {"run": "hamlet", "length": 0}, 400, "length"),
    ("/generate", {"run": "hamlet", "length": 501}, 400, "length"),
    ("/generate", {"run": "hamlet", "temperature": -1}, 400, "temperature"),
    ("/generate", {"run": "hamlet", "temperature": 1e308}, 400, "temperature"),
    ("/generate", {"run": "hamlet", "top_p": 1.5}, 400, "top_p"),
    ("/generate", {"run": "hamlet", "top_k": 2.5}, 400, "top_k"),
    ("/generate", {"run": "hamlet", "seed": -3}, 400, "seed"),
    ("/generate", {"run": "hamlet", "stream": "yes"}, 400, "stream"),
    ("/generate", {"run": "hamlet", "prime": "To be \u20ac"}, 400, "prime"),
    ("/generate", {"run": "hamlet", "prime": 7}, 400, "prime"),
    ("/generate", {"run": "hamlet", "prime": ""}, 400, "prime"),
    ("/generate", {"run": "hamlet", "prime": "To be " * 400}, 400, "prime"),
    ("/generate", {"run": "macbeth"}, 404, "run"),
    ("/generate", {"run": ["hamlet"]}, 400, "run"),
    ("/generate", {"prime": "To"}, 400, "run"),
    ("/generate", {"run": "hamlet", "author": "bob"}, 400, "author"),
    ("/generate", {"run": "authors"}, 400, "author"),
    ("/generate", {"run": "authors", "author": "dan"}, 400, "author"),
    ("/generate", {"run": "hamlet", "prime": "x" * 30_000}, 413, "body"),
    ("/attribute", {"run": "hamlet", "text": "To be"}, 400, "run"),
    ("/attribute", {"run": "authors"}, 400, "text"),
    ("/attribute", {"run": "authors", "text": 5}, 400, "text"),
    ("/attribute", {"run": "authors", "text": "   "}, 400, "text"),
    ("/attribute", {"run": "authors", "text": "A"}, 400, "text"),
    ("/attribute", {"run": "authors", "text": "A cat.", "model": "forest"}, 400, "model"),
]


@pytest.mark.parametrize("path, body, status, field", BAD_REQUESTS,
                         ids=[f"{p}-{f}-{i}" for i, (p, _, _, f) in enumerate(BAD_REQUESTS)])
def test_bad_requests_get_a_4xx_that_names_the_field(server, path, body, status, field):
    url, _ = server
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(url + path, content=content, timeout=30,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["field"] == field and error["error"].startswith(field), error
    assert httpx.get(url + "/health").status_code == 200  # and the server still serves


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = st.sampled_from(["run", "prime", "length", "temperature", "top_k", "top_p", "seed",
                          "author", "stream", "text", "model"])


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(["/generate", "/attribute"]),
       body=JSON | st.dictionaries(FIELDS, JSON, max_size=5) | st.binary(max_size=200))
def test_random_bodies_never_get_a_5xx(server, path, body):
    url, _ = server
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(url + path, content=content, timeout=60)
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.json()["error"]


def test_a_client_that_goes_away_mid_stream_frees_its_row(server):
    url, app = server
    batcher = app.runs["hamlet"].batchers[None]
    rows_before = batcher.rows
    app.settings.max_length = 100_000  # minutes of sampling, if nothing stopped it
    try:
        body = {"run": "hamlet", "length": 100_000, "stream": True}
        with httpx.stream("POST", url + "/generate", json=body, timeout=60) as response:
            for piece in response.iter_text():
                if "event: text" in piece:
                    break  # and close the connection
    finally:
        app.settings.max_length = 500
    deadline = time.monotonic() + 10
    while batcher.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert batcher.active == 0 and batcher.waiting.empty()
    assert batcher.rows - rows_before < 100_000 // batcher.chunk


def test_unknown_paths_and_methods_get_json_4xx(server):
    url, _ = server
    assert httpx.get(url + "/nowhere").status_code == 404
    answer = httpx.get(url + "/generate")
    assert answer.status_code == 405 and "error" in answer.json()


def test_a_request_past_the_timeout_is_cut_off(server):
    url, app = server
    app.settings.timeout = 0.001
    try:
        answer = post(url, "/generate", {"run": "hamlet", "length": 500})
        assert answer.status_code == 408 and answer.json()["field"] == "length"
        assert "timeout" in answer.json()["error"]
    finally:
        app.settings.timeout = 30.0
    batcher = app.runs["hamlet"].batchers[None]
    deadline = time.monotonic() + 10
    while batcher.active and time.monotonic() < deadline:  # its row is freed
        time.sleep(0.05)
    assert batcher.active == 0
    assert post(url, "/generate", {"run": "hamlet", "length": 20}).status_code == 200


def test_a_token_is_needed_on_every_request_but_health(server):
    url, app = server
    app.settings.token = "s3cret"
    try:
        assert httpx.get(url + "/health").status_code == 200
        for method, path in (("GET", "/runs"), ("GET", "/"), ("POST", "/generate")):
            answer = httpx.request(method, url + path, json={"run": "hamlet"})
            assert answer.status_code == 401 and answer.json()["field"] == "Authorization"
        wrong = httpx.get(url + "/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = httpx.get(url + "/runs", headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert httpx.get(url + "/?token=s3cret").status_code == 200
    finally:
        app.settings.token = None


def test_a_host_beyond_this_machine_needs_a_token_or_insecure(runs, capsys):
    generator_run, _ = runs
    assert main(["serve", str(generator_run), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--host 0.0.0.0" in err and "--token" in err \
        and "--insecure" in err
    from toolkit.serving.server import check_host

    check_host("0.0.0.0", None, insecure=True)
    assert "warning: --insecure" in capsys.readouterr().err
    for flags in (["--port", "70000"], ["--max-length", "0"], ["--timeout", "0"]):
        assert main(["serve", str(generator_run), *flags]) == 2
        assert capsys.readouterr().err.startswith(f"toolkit: error: {flags[0]}")


def test_sigterm_finishes_the_requests_in_flight_then_exits_0(runs):
    generator_run, _ = runs
    server = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", str(generator_run),
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = server.stdout.readline()
        url = re.search(r"http://[\d.]+:\d+", line).group(0)
        first_text = threading.Event()
        result = {}

        def stream():
            body = {"prime": "To be", "length": 2000, "seed": 5, "stream": True}
            with httpx.stream("POST", url + "/generate", json=body, timeout=120) as response:
                chunks = []
                for piece in response.iter_text():
                    chunks.append(piece)
                    if "event: text" in piece:
                        first_text.set()
                result["body"] = "".join(chunks)

        client = threading.Thread(target=stream)
        client.start()
        assert first_text.wait(60)
        server.send_signal(signal.SIGTERM)
        client.join(120)
        assert server.wait(60) == 0
        done = result["body"].split("event: done\ndata: ")[1]
        assert json.loads(done.splitlines()[0])["tokens"] == 2000
        assert "stopped" in server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
        server.stdout.close()
        server.stderr.close()


def test_the_page_streams_text_and_draws_bars_in_a_real_browser(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _ = server
    browser = chromium_driver()
    try:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#run option")) == 2)
        Select(browser.find_element(By.ID, "run")).select_by_value("hamlet")
        prime = browser.find_element(By.ID, "prime")
        prime.clear()
        prime.send_keys("To be")
        length = browser.find_element(By.ID, "length")
        length.clear()
        length.send_keys("480")
        # the generated text's length before each piece was appended: one mutation
        # record per streamed event, however the browser batches its callbacks
        browser.execute_script(
            "window.lengths = [];"
            "new MutationObserver(records => records.forEach(r => {"
            " if (r.type === 'characterData') window.lengths.push(r.oldValue.length); }))"
            ".observe(document.getElementById('output'),"
            " {characterData: true, characterDataOldValue: true, subtree: true});")
        browser.find_element(By.ID, "generate").click()
        wait.until(lambda b: "480 tokens" in b.find_element(By.ID, "write-meta").text)
        output = browser.find_element(By.ID, "output").text
        assert output.startswith("To be") and len(output) == len("To be") + 480
        lengths = browser.execute_script("return window.lengths")
        # the text appeared in many pieces (480 tokens in chunks of 32), each longer
        assert len(lengths) >= 8 and lengths == sorted(set(lengths)), lengths
        Select(browser.find_element(By.ID, "run")).select_by_value("authors")
        assert browser.find_element(By.ID, "author-box").is_displayed()
        text = browser.find_element(By.ID, "text")
        text.send_keys(author_text("bob", 100, 5))
        browser.find_element(By.ID, "attribute-button").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 3)
        widths = browser.execute_script(
            "return Array.from(document.querySelectorAll('#bars .fill')).map("
            "f => f.getBoundingClientRect().width)")
        assert max(widths) > 20 and sum(w > 0 for w in widths) >= 1, widths
        verdict = browser.find_element(By.ID, "verdict").text
        assert verdict in ("Answer: bob", "unknown: probably none of these authors"), verdict
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        overflow = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], f"the page scrolls sideways: {overflow}"
        if os.environ.get("TOOLKIT_SCREENSHOT"):
            browser.save_screenshot(os.environ["TOOLKIT_SCREENSHOT"])
    finally:
        browser.quit()
