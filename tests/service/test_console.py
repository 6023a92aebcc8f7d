"""The web console (/console/): its files over HTTP, the version history route it reads, and the
page itself in a real headless Chromium driven by Selenium against a live uvicorn that serves
the tiny models of conftest and a SQLite series store holding a seeded series.

Browser checks: the page loads with no console error; a read key lists the models; a series
draws its history, forecast and both bands, and the numbers the drawn elements carry equal the
API's; a missing or wrong key shows the service's 401 or 403 message; a bad CSV upload shows
the 422 message naming the field; the key travels only in X-API-Key, never in a URL, and no
log line holds it. A screenshot of each state is saved under FORECAST_TEST_ARTIFACTS (default:
a pytest temp folder). Skipped with the reason when selenium, Chromium or chromedriver is
missing (FORECAST_TEST_CHROMIUM / FORECAST_TEST_CHROMEDRIVER override the Debian paths).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.main import create_app
from service.store_deps import StoreHandle, StoreSettings
from tests.service.conftest import (
    ADMIN,
    HORIZON,
    HOURLY,
    READ,
    READ_KEY,
    STOCK,
    Store,
    live_server,
)

SERIES = "console-load"
SEEDED = 40  # observations stored before the logged forecast; the rest arrive as its actuals
CHROMIUM = os.environ.get("FORECAST_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FORECAST_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 30.0

# ---------------------------------------------------------------- the files and the route


def test_console_is_served_without_a_key_with_a_strict_policy(client: TestClient) -> None:
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "default-src 'none'" in policy
    total = len(page.content)
    for asset, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        answer = client.get(f"/console/{asset}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        total += len(answer.content)
    assert total < 500_000, total
    # Nothing from another origin: no CDN, no web font, no external script.
    for text in (page.text, client.get("/console/console.js").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    missing = client.get("/console/secrets.txt")
    assert missing.status_code == 404 and missing.json()["field"] == "path"
    # The page is public; the data is not.
    assert client.get("/v1/models").status_code == 401


def test_versions_lists_the_registered_history(client: TestClient) -> None:
    answer = client.get(f"/v1/models/{HOURLY}/versions", headers=READ)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == HOURLY and body["alias"] == "champion"
    (first,) = body["versions"]
    assert first["version"] == "1" and first["served"] is True
    assert set(first["aliases"]) == {"champion", "challenger"}
    assert first["family"] == "gru" and first["gate_decision"] == "promoted"
    assert first["gate_metric"].startswith("val_") and isinstance(first["val_score"], float)
    assert first["champion_score"] is None and first["created_at"]


def test_versions_of_an_unknown_model_and_without_a_key(client: TestClient) -> None:
    unknown = client.get("/v1/models/no-such-model/versions", headers=READ)
    assert unknown.status_code == 404 and unknown.json()["field"] == "name"
    assert client.get(f"/v1/models/{HOURLY}/versions").status_code == 401


# ---------------------------------------------------------------- the live server


@dataclass
class Live:
    """The running service, its URL, and every log line it wrote."""

    url: str
    records: list[str]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", timeout=30, **kwargs)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"{record.name} {record.getMessage()} {record.args!r}")


@pytest.fixture(scope="module")
def live(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """uvicorn (access log on) serving both models and a series store with SERIES seeded and
    one logged forecast of it whose actuals arrived."""
    db = tmp_path_factory.mktemp("console-series") / "series.db"
    app = create_app(store.settings())
    handle = StoreHandle(
        StoreSettings(database_url=SecretStr(f"sqlite:///{db}"), live_refresh_seconds=0)
    )
    app.state.series_store = handle
    records: list[str] = []
    collector = _Collect(records)
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.access", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(collector)
    levels = {logger.name: logger.level for logger in loggers}
    logging.getLogger().setLevel(logging.INFO)
    try:
        with live_server(app, log_level="info", access_log=True) as port:
            service = Live(url=f"http://127.0.0.1:{port}", records=records)
            _seed(service, store)
            yield service
    finally:
        handle.close()
        for logger in loggers:
            logger.removeHandler(collector)
            logger.setLevel(levels[logger.name])


def _seed(live: Live, store: Store) -> None:
    history = store.hourly
    for series_id in (SERIES, "console-other"):
        put = live.api(
            "PUT", f"/v1/series/{series_id}", headers=ADMIN, json={"frequency": "h", "target": "OT"}
        )
        assert put.status_code == 201, put.text
    body = {"timestamps": history.timestamps[:SEEDED], "values": history.values[:SEEDED]}
    posted = live.api("POST", f"/v1/series/{SERIES}/observations", headers=ADMIN, json=body)
    assert posted.status_code == 200, posted.text
    request = {"model": HOURLY, "horizon": HORIZON, "levels": [80, 95]}
    made = live.api("POST", f"/v1/series/{SERIES}/forecast", headers=READ, json=request)
    assert made.status_code == 200, made.text
    rest = {"timestamps": history.timestamps[SEEDED:], "values": history.values[SEEDED:]}
    posted = live.api("POST", f"/v1/series/{SERIES}/observations", headers=ADMIN, json=rest)
    assert posted.status_code == 200, posted.text
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:  # the forecast log is written off the request path
        logged = live.api("GET", f"/v1/series/{SERIES}/forecasts", headers=READ)
        if logged.status_code == 404 and logged.json().get("field") is None:
            return  # no forecast log on this service: the page shows "no live data yet"
        forecasts = logged.json().get("forecasts", []) if logged.status_code == 200 else []
        if any(a is not None for f in forecasts for a in f["actuals"]):
            return
        time.sleep(0.2)
    pytest.fail(f"the logged forecast of {SERIES} never got its actuals: {logged.text}")


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: FORECAST_TEST_ARTIFACTS, or a pytest temp folder."""
    chosen = os.environ.get("FORECAST_TEST_ARTIFACTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium through the system chromedriver (selenium-manager never runs)."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} not found: install Debian's {package} (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}; page status: {_statuses(driver)}")


def _statuses(driver: Any) -> str:
    return str(
        driver.execute_script(
            "return [...document.querySelectorAll('.status, .error')]"
            ".map(e => e.id + ': ' + e.textContent.trim()).filter(t => !t.endsWith(': '))"
        )
    )


def _by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _errors(driver: Any, *, network_ok: bool = False) -> list[dict[str, Any]]:
    """SEVERE browser log entries since the last call (network ones too unless allowed)."""
    entries = driver.get_log("browser")
    return [
        e
        for e in entries
        if e["level"] == "SEVERE" and not (network_ok and e.get("source") == "network")
    ]


def _shot(driver: Any, folder: Path, name: str, *, full: bool = True) -> None:
    """A screenshot of the whole page (the window grown to the page's height)."""
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.get_window_size()["width"]
        driver.set_window_size(width, min(int(height) + 140, 6000))
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def _open(driver: Any, live: Live, key: str | None) -> None:
    """A fresh page with no stored key, then connect with `key` (None: leave it empty)."""
    driver.get(f"{live.url}/console/")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete", "load")
    _connect(driver, key)


def _connect(driver: Any, key: str | None) -> None:
    field = _by_id(driver, "api-key")
    field.clear()
    if key is not None:
        field.send_keys(key)
    _by_id(driver, "key-connect").click()
    _wait(
        driver,
        lambda d: (
            not _by_id(d, "key-error").get_attribute("hidden")
            or "Connected" in _by_id(d, "key-status").text
        ),
        "the connection's outcome",
    )


@pytest.mark.slow
def test_page_loads_clean_and_a_read_key_lists_the_models(
    browser: Any, live: Live, artefacts: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{live.url}/")  # the home page is the console
    _wait(browser, lambda d: d.current_url.endswith("/console/"), "the redirect to /console/")
    _wait(browser, lambda d: d.execute_script("return document.readyState") == "complete", "load")
    assert browser.title == "Forecast console"
    assert _errors(browser) == []
    _shot(browser, artefacts, "01-loaded")

    _connect(browser, READ_KEY)
    assert "Connected" in _by_id(browser, "key-status").text, _statuses(browser)
    served = live.api("GET", "/v1/models", headers=READ).json()["models"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#models-table tbody tr")
    assert [r.get_attribute("data-model") for r in rows] == [HOURLY, STOCK]
    for row, model in zip(rows, served, strict=True):
        cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
        assert cells[:7] == [
            model["name"],
            model["version"],
            model["alias"],
            model["family"],
            model["frequency"],
            str(model["lookback"]),
            str(model["max_horizon"]),
        ]

    browser.find_element(By.CSS_SELECTOR, f"button[data-model='{HOURLY}']").click()
    _wait(browser, lambda d: "champion" in _by_id(d, "model-versions").text, "version history")
    _wait(browser, lambda d: _by_id(d, "model-live").text.strip() != "", "live accuracy")
    title = _by_id(browser, "model-detail-title").text
    assert title == f"{HOURLY} version 1 (champion)"
    assert "promoted" in _by_id(browser, "model-versions").text
    scores = _by_id(browser, "model-scores").text
    assert "Test, all steps" in scores and "mase" in scores and "Validation (gate)" in scores
    assert _by_id(browser, "model-detail-title") == browser.switch_to.active_element
    perf = live.api("GET", f"/v1/models/{HOURLY}/performance", headers=READ)
    live_text = _by_id(browser, "model-live").text
    if perf.status_code == 200 and perf.json()["versions"]:
        assert "MASE" in live_text and "80% coverage" in live_text
    else:
        assert "No live data yet" in live_text
    assert _errors(browser) == []
    _shot(browser, artefacts, "02-models")

    # Keyboard: a model name is a button; Enter opens it. A model with no logged forecast.
    browser.find_element(By.CSS_SELECTOR, f"button[data-model='{STOCK}']").send_keys(Keys.ENTER)
    _wait(browser, lambda d: STOCK in _by_id(d, "model-detail-title").text, "the keyboard")
    _wait(browser, lambda d: "No live data yet" in _by_id(d, "model-live").text, "no live data")
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => e.labels.length === 0).map(e => e.id || e.outerHTML)"
    )
    assert unlabelled == []


@pytest.mark.slow
def test_a_series_draws_history_forecast_and_both_bands_as_the_api_answers(
    browser: Any, live: Live, artefacts: Path, store: Store
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    _open(browser, live, READ_KEY)
    search = _by_id(browser, "series-id")
    search.send_keys("console-")
    _wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#series-options option")) == 2,
        "the series search",
    )
    search.send_keys("load")
    Select(_by_id(browser, "series-model")).select_by_value(HOURLY)
    horizon = _by_id(browser, "series-horizon")
    horizon.clear()
    horizon.send_keys(str(HORIZON))
    _by_id(browser, "series-go").click()
    _wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#series-chart path.forecast"), "chart"
    )
    _wait(browser, lambda d: "overlaid" in _by_id(d, "series-status").text, "the series status")

    def data(selector: str, attribute: str) -> Any:
        found = browser.find_element(By.CSS_SELECTOR, f"#series-chart {selector}")
        return json.loads(found.get_attribute(attribute))

    stored = live.api("GET", f"/v1/series/{SERIES}/observations", headers=READ).json()
    assert data("path.history", "data-values") == stored["values"] == store.hourly.values
    assert data("path.history", "data-timestamps") == stored["timestamps"]
    request = {"model": HOURLY, "horizon": HORIZON, "levels": [80, 95]}
    answer = live.api("POST", f"/v1/series/{SERIES}/forecast", headers=READ, json=request).json()
    assert data("path.forecast", "data-timestamps") == answer["timestamps"]
    assert data("path.forecast", "data-values") == pytest.approx(answer["mean"], rel=1e-9)
    for level in ("80", "95"):
        band = f"path.band[data-level='{level}']"
        for side in ("lower", "upper"):
            drawn = data(band, f"data-{side}")
            assert drawn == pytest.approx(answer["intervals"][level][side], rel=1e-9)
        outline = browser.find_element(By.CSS_SELECTOR, f"#series-chart {band}")
        assert outline.get_attribute("d").count(",") == 2 * HORIZON  # upper, then lower back
    line = browser.find_element(By.CSS_SELECTOR, "#series-chart path.history").get_attribute("d")
    assert line.count(",") == len(store.hourly.values)
    bands = browser.find_elements(By.CSS_SELECTOR, "#series-chart path.band")
    assert [b.get_attribute("data-level") for b in bands] == ["95", "80"]  # the wide one first

    logged = live.api("GET", f"/v1/series/{SERIES}/forecasts", headers=READ)
    live_error = _by_id(browser, "series-live").text
    if logged.status_code == 200:
        past = browser.find_elements(By.CSS_SELECTOR, "#series-chart path.past")
        assert past, "the logged forecast with its actuals is not overlaid"
        actuals = json.loads(past[-1].get_attribute("data-actuals"))
        assert actuals == store.hourly.values[SEEDED : SEEDED + HORIZON]
        steps = browser.find_elements(By.CSS_SELECTOR, "#series-live tbody tr")
        assert len(steps) == HORIZON and "MAE" in live_error
    else:
        assert "No live data yet" in live_error

    chart = browser.find_element(By.CSS_SELECTOR, "#series-chart svg")
    hit = browser.find_element(By.CSS_SELECTOR, "#series-chart rect.hit")
    ActionChains(browser).move_to_element_with_offset(hit, hit.size["width"] // 2 - 2, 0).perform()
    tip = browser.find_element(By.CSS_SELECTOR, "#series-chart .tooltip")
    _wait(browser, lambda d: tip.is_displayed(), "the hover tooltip")
    assert "UTC" in tip.text and "forecast" in tip.text
    browser.execute_script("arguments[0].focus()", chart)
    ActionChains(browser).send_keys(Keys.END).perform()  # keyboard: the last forecast step
    _wait(browser, lambda d: "step 6" in tip.text, "the keyboard cursor")
    assert "80%:" in tip.text and "95%:" in tip.text
    assert _errors(browser) == []
    browser.set_window_size(1280, 1300)  # the README's picture: models, chart and tooltip
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    points = browser.find_elements(By.CSS_SELECTOR, "#series-chart circle.forecast-point")
    ActionChains(browser).move_to_element(points[2]).perform()
    _wait(browser, lambda d: "step 3" in tip.text, "the tooltip of step 3")
    _shot(browser, artefacts, "console", full=False)
    _shot(browser, artefacts, "03-series")
    _by_id(browser, "series").screenshot(str(artefacts / "03-series-section.png"))
    browser.set_window_size(390, 844)  # a phone
    time.sleep(0.4)  # the chart redraws after a resize pause
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways on a phone ({width}px)"
    browser.execute_script("document.getElementById('series-status').scrollIntoView()")
    browser.save_screenshot(str(artefacts / "03-series-phone.png"))
    browser.set_window_size(1280, 1000)


@pytest.mark.slow
def test_a_missing_or_wrong_key_shows_the_services_message(
    browser: Any, live: Live, artefacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    missing = live.api("GET", "/v1/models").json()
    _open(browser, live, None)
    error = _by_id(browser, "key-error")
    assert error.text == f"Error 401: {missing['detail']} (field: X-API-Key)"
    assert browser.find_elements(By.CSS_SELECTOR, "#models-table tbody tr") == []
    _shot(browser, artefacts, "04-missing-key")

    wrong = live.api("GET", "/v1/models", headers={"X-API-Key": "not-a-key"}).json()
    _connect(browser, "not-a-key")
    _wait(browser, lambda d: "403" in error.text, "the 403")
    assert error.text == f"Error 403: {wrong['detail']} (field: X-API-Key)"
    assert "Not connected" in _by_id(browser, "key-status").text
    assert browser.execute_script("return sessionStorage.length") == 0  # a refused key is dropped
    assert _errors(browser, network_ok=True) == []  # the 401 and 403 only, no script error
    _shot(browser, artefacts, "04-wrong-key")


@pytest.mark.slow
def test_a_csv_upload_forecasts_and_a_bad_one_shows_the_422_naming_the_field(
    browser: Any, live: Live, artefacts: Path, store: Store
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    history = store.hourly
    rows = [f"{t},{v}" for t, v in zip(history.timestamps, history.values, strict=True)]
    _open(browser, live, READ_KEY)
    Select(_by_id(browser, "upload-model")).select_by_value(HOURLY)
    csv = _by_id(browser, "upload-csv")
    _paste(browser, csv, "timestamp,value\n" + "\n".join(rows))
    _by_id(browser, "upload-go").click()
    _wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload-chart path.forecast"), "chart"
    )
    drawn = browser.find_element(By.CSS_SELECTOR, "#upload-chart path.forecast")
    body = history.body(horizon=HORIZON, levels=[80, 95])
    answer = live.api("POST", f"/v1/models/{HOURLY}/forecast", headers=READ, json=body).json()
    assert json.loads(drawn.get_attribute("data-values")) == pytest.approx(answer["mean"])
    assert _errors(browser) == []

    bad = list(rows)
    bad[4] = f"{history.timestamps[4]},n/a"  # CSV line 6 (after the header)
    _paste(browser, csv, "timestamp,value\n" + "\n".join(bad))
    _by_id(browser, "upload-go").click()
    error = _by_id(browser, "upload-error")
    _wait(browser, lambda d: error.is_displayed(), "the upload error")
    sent = {**body, "values": [*history.values[:4], "n/a", *history.values[5:]]}
    refused = live.api("POST", f"/v1/models/{HOURLY}/forecast", headers=READ, json=sent)
    assert refused.status_code == 422 and refused.json()["field"] == "values[4]"
    detail = refused.json()["detail"]
    assert error.text == f"Error 422: {detail} (field: values[4]) — CSV line 6"
    assert _errors(browser, network_ok=True) == []
    _shot(browser, artefacts, "05-bad-csv")


def _wait_chart(driver: Any, chart: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{chart} path.forecast"), chart)


def _paste(driver: Any, area: Any, text: str) -> None:
    """Set the textarea as a paste would (send_keys of a long CSV is slow)."""
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        area,
        text,
    )


@pytest.mark.slow
def test_the_key_travels_only_in_the_header_and_is_never_logged(browser: Any, live: Live) -> None:
    from selenium.webdriver.common.by import By

    browser.get_log("performance")  # drop what earlier tests left
    _open(browser, live, READ_KEY)
    _by_id(browser, "series-id").send_keys(SERIES)
    _by_id(browser, "series-go").click()
    _wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#series-chart path.forecast"), "chart"
    )
    sent = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            sent.append(message["params"]["request"])
    api_calls = [r for r in sent if "/v1/" in r["url"]]
    assert len(api_calls) >= 4, [r["url"] for r in sent]
    for request in sent:
        assert READ_KEY not in request["url"]
        assert READ_KEY not in json.dumps(request.get("postData", ""))
    for request in api_calls:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers.get("x-api-key") == READ_KEY, request["url"]
    assert READ_KEY not in browser.current_url
    assert browser.execute_script("return localStorage.length + document.cookie.length") == 0
    for entry in browser.get_log("browser"):
        assert READ_KEY not in entry["message"]
    assert any("/v1/series/" in line for line in live.records), "no access log was captured"
    leaked = [line for line in live.records if READ_KEY in line]
    assert leaked == []
