"""The confirmation pages in a real headless Chromium: a Grafana data link opens one, the person
confirms, mailcow changes; a foreign page's form or script, a DNS-rebinding page and plain GETs
change nothing."""

from __future__ import annotations

import html
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from flask import Flask
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from exporter.app import create_app
from tests.conftest import make_config

ROOT = Path(__file__).parent.parent
GRAFANA = "http://grafana.example:3000"
EVIL_HOST = "rebind.evil.example"


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "Debian chromium and chromium-driver are required (scripts/test.sh installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--host-resolver-rules=MAP {EVIL_HOST} 127.0.0.1")  # the rebound name
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def service(db_url, pool, mailcow, live_app):
    with pool.connection() as conn:
        conn.execute("TRUNCATE action_audit")
    app = create_app(make_config(db_url, mailcow.url, grafana_url=GRAFANA, live_cache_seconds=0), pool)
    return live_app(app)


def data_link(title: str) -> str:
    """The URL template of a data link on the committed Queue & quarantine dashboard."""
    board = json.loads((ROOT / "dashboards" / "mailcow-queue.json").read_text())
    for panel in board["panels"]:
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                for link in prop["value"] if prop["id"] == "links" else []:
                    if link["title"] == title and panel["title"] == "Quarantine":
                        return link["url"]
    raise AssertionError(f"no data link {title!r}")


def audit(pool) -> list[dict]:
    with pool.connection() as conn:
        return [r[0] for r in conn.execute("SELECT row_to_json(a) FROM action_audit a ORDER BY id")]


def test_a_data_link_opens_a_confirmation_page_and_confirming_releases_the_mail(browser, service, sim, pool):
    ident = min(sim.state.quarantine)
    row = sim.state.quarantine[ident]
    # what Grafana does with the link: fill in the service URL variable and the row's id field
    url = data_link("Release…").replace("${service_url}", service.url).replace("${__data.fields.id}", str(ident))
    browser.get(url)
    assert "Release 1 quarantined message" in browser.find_element(By.ID, "summary").text
    items = browser.find_element(By.ID, "items").text
    assert str(ident) in items and row["rcpt"] in items and row["subject"] in items
    assert ident in sim.state.quarantine  # opening the page changed nothing

    browser.find_element(By.ID, "confirm").click()
    outcome = WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "outcome")))
    assert "1 of 1 item done" in outcome.text
    assert "released" in browser.find_element(By.ID, "results").text
    assert browser.find_element(By.ID, "back").get_attribute("href") == f"{GRAFANA}/d/mailcow-queue"
    assert ident not in sim.state.quarantine
    entry = audit(pool)[-1]
    assert entry["via"] == "page" and entry["action"] == "release" and entry["items"] == [str(ident)]
    assert entry["outcome"] == "success" and entry["results"][0]["ok"] is True


def test_a_foreign_page_and_plain_gets_change_nothing(browser, service, sim, pool, live_app):
    ident = min(sim.state.quarantine)
    browser.get(f"{service.url}/actions/quarantine/delete?items={ident}")
    token = re.search(r'name="token" value="([^"]+)"', browser.page_source).group(1)  # even a valid token

    attacker = Flask("attacker")
    target = f"{service.url}/actions/quarantine/delete"
    api = f"{service.url}/api/quarantine/delete"

    @attacker.get("/form")
    def form() -> str:
        return (
            f'<form method="post" action="{html.escape(target)}">'
            f'<input name="items" value="{ident}"><input name="token" value="{html.escape(token)}"></form>'
            "<script>document.forms[0].submit()</script>"
        )

    @attacker.get("/script")
    def script() -> str:
        body = json.dumps({"items": [ident]})
        return (
            "<p id='state'>waiting</p><script>"
            f"fetch('{api}', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: '{body}'}})"
            ".then(r => document.getElementById('state').textContent = 'answered ' + r.status)"
            ".catch(e => document.getElementById('state').textContent = 'blocked');"
            f"fetch('{api}', {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}},"
            f" body: '{body}'}});"
            "</script>"
        )

    foreign = live_app(attacker)
    foreign_origin = foreign.url.replace("127.0.0.1", "localhost")  # another site than the service's

    browser.get(f"{foreign_origin}/form")
    WebDriverWait(browser, 15).until(lambda b: b.current_url.startswith(service.url))
    assert "ORIGIN_REFUSED" in browser.page_source

    browser.get(f"{foreign_origin}/script")
    WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "state").text != "waiting")
    assert browser.find_element(By.ID, "state").text == "blocked"  # no CORS for this origin
    time.sleep(0.5)  # let the no-cors request land

    for url in (f"{service.url}/actions/quarantine/delete?items={ident}", api):
        browser.get(url)
    assert "405" in browser.page_source or "Method Not Allowed" in browser.page_source

    assert ident in sim.state.quarantine
    assert all(entry["outcome"] == "refused" for entry in audit(pool))


REBINDING_PAGE = """<p id="state">waiting</p><script>
(async () => {
  const seen = {};
  try {
    const api = await fetch('/api/quarantine/delete',
      {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({items: [ID]})});
    seen.api = api.status;
    const page = await fetch('/actions/quarantine/release?items=ID');
    seen.page = page.status;
    const token = (await page.text()).match(/name="token" value="([^"]+)"/);
    seen.token = Boolean(token);
    if (token) {
      const form = await fetch('/actions/quarantine/release',
        {method: 'POST', body: new URLSearchParams({items: 'ID', token: token[1]})});
      seen.form = form.status;
    }
  } catch (e) { seen.error = String(e); }
  document.getElementById('state').textContent = JSON.stringify(seen);
})();
</script>"""


def test_a_dns_rebinding_page_can_neither_act_nor_get_a_token(browser, db_url, pool, mailcow, sim, live_app):
    """evil.example first resolved to the attacker's server (which served this page), then to us: the
    page's same-origin requests reach the service with Host: evil.example. One server on one port
    stands for both answers: the attacker's page under /evil, the service everywhere else."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    with pool.connection() as conn:
        conn.execute("TRUNCATE action_audit")
    ident = min(sim.state.quarantine)
    attacker = Flask("attacker")
    attacker.add_url_rule("/page", "page", lambda: REBINDING_PAGE.replace("ID", str(ident)))
    service = create_app(make_config(db_url, mailcow.url, grafana_url=GRAFANA, live_cache_seconds=0), pool)
    server = live_app(DispatcherMiddleware(service, {"/evil": attacker}))

    browser.get(server.url.replace("127.0.0.1", EVIL_HOST) + "/evil/page")
    WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "state").text != "waiting")
    assert json.loads(browser.find_element(By.ID, "state").text) == {"api": 400, "page": 400, "token": False}
    assert ident in sim.state.quarantine and audit(pool) == []
