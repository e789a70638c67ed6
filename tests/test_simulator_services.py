"""The simulator logs all ten of mailcow's lists in their real shapes, capped, and says what Dovecot did.

Every item must be one our parsers read (`parsers.raw_logs`), every Dovecot delivery line must say what the
ground truth says happened to that message and recipient, and the per-service totals must let a test
count lost or doubled lines.
"""

from __future__ import annotations

import base64
import re
from collections import Counter

import httpx
import pytest

from exporter.parsers import dovecot, raw_logs
from exporter.simulator.app import create_simulator_app
from exporter.simulator.state import MailcowState
from exporter.simulator.traffic import Simulation
from tests.conftest import RO_KEY, RW_KEY, SIM_START

SYSLOG = ("postfix", "dovecot", "sogo")


def get_log(server, service: str, count: int = 10000) -> list[dict]:
    body = httpx.get(f"{server.url}/api/v1/get/logs/{service}/{count}", headers={"X-API-Key": RO_KEY}).json()
    return body if isinstance(body, list) else []


def items(sim: Simulation, service: str) -> list[dict]:
    return list(sim.state.rspamd_history if service == "rspamd-history" else sim.state.logs[service])


@pytest.fixture(scope="module")
def day() -> Simulation:
    """A quiet day of mailcow (acme checks, renewals and every rarer line happen), frozen at its end."""
    state = MailcowState(log_cap=500_000)  # nothing trimmed: every line can be compared with the ground truth
    simulation = Simulation(state, seed=21, start=SIM_START - 86400, rate_per_minute=3, clock=lambda: SIM_START)
    simulation.advance()
    return simulation


def test_every_list_is_served_with_the_reference_sheets_field_types(mailcow):
    for service in SYSLOG:
        served = get_log(mailcow, service)
        assert served, service
        assert all(list(i) == ["time", "program", "priority", "message"] for i in served), service
        assert all(isinstance(v, str) for i in served for v in i.values()), service
        assert all(i["time"].isdigit() for i in served), service
    assert {i["program"] for i in get_log(mailcow, "dovecot")} == {"dovecot"}
    sogo = get_log(mailcow, "sogo")
    assert {(i["program"], i["priority"]) for i in sogo} == {("sogod", "notice")}
    assert all(re.match(r"\[\d+\]: ", i["message"]) for i in sogo)
    ratelimited = get_log(mailcow, "ratelimited")
    keys = ["time", "rcpt", "from", "user", "rl_info", "rl_name", "rl_hash", "qid", "ip", "message_id"]
    assert ratelimited and all(list(i) == [*keys, "header_subject", "header_from"] for i in ratelimited)
    assert all(isinstance(i["time"], int) for i in ratelimited)
    assert all(
        isinstance(v, str) or (k == "user" and v is None) for i in ratelimited for k, v in i.items() if k != "time"
    )
    watchdog = get_log(mailcow, "watchdog")
    health = [i for i in watchdog if "service" in i]
    assert health and all(list(i) == ["time", "service", "lvl", "hpnow", "hptotal", "hpdiff"] for i in health)
    assert all(isinstance(v, str) for i in watchdog for v in i.values())
    acme = get_log(mailcow, "acme")
    assert acme and all(list(i) == ["time", "message"] and isinstance(i["time"], str) for i in acme)
    autodiscover = get_log(mailcow, "autodiscover")
    assert autodiscover and all(list(i) == ["time", "ua", "user", "ip", "service"] for i in autodiscover)
    assert all(isinstance(i["time"], int) and isinstance(i["ua"], (str, type(None))) for i in autodiscover)
    api = get_log(mailcow, "api")
    assert api and all(list(i) == ["time", "uri", "method", "remote", "data"] for i in api)
    assert all(isinstance(i["time"], int) and isinstance(i["data"], str) for i in api)


def test_every_item_of_every_list_parses(day, sim):
    for simulation in (day, sim):
        for service in raw_logs.SERVICES:
            listed = items(simulation, service)
            assert listed, service
            unread = [i for i in listed if raw_logs.parse(service, i) is None]
            assert unread == [], (service, unread[:3])


def test_lists_are_newest_first(day):
    for service in raw_logs.SERVICES:
        field = "unix_time" if service == "rspamd-history" else "time"
        times = [int(i[field]) for i in items(day, service)]
        assert times == sorted(times, reverse=True), service


def test_the_rarer_lines_all_occur(day):
    dovecot_text = "\n".join(i["message"] for i in items(day, "dovecot"))
    for marker in ("imap-login: Login: ", "pop3-login: Login: ", "Logged out", "Password mismatch", "Login aborted"):
        assert marker in dovecot_text, marker
    assert re.search(r"-login: Disconnected \(auth failed, 1 attempts in \d+ secs\)", dovecot_text)
    assert "rip=172.22.1.248, lip=172.22.1.250, mpid=" in dovecot_text  # SOGo's IMAP logins
    sogo_text = "\n".join(i["message"] for i in items(day, "sogo"))
    assert "successful login from" in sogo_text and "might not have worked" in sogo_text
    watchdog = items(day, "watchdog")
    assert any("message" in i for i in watchdog) and any(i.get("hpnow") != i.get("hptotal") for i in watchdog)
    acme = [i["message"] for i in items(day, "acme")]
    encoded = [m for m in acme if m.startswith("base64,")]
    assert encoded and all(m.startswith("base64,mail.example.org - ") for m in encoded)
    assert "Certificate signed!" in base64.b64decode(encoded[0].split(" - ", 1)[1]).decode()
    assert "Certificate signed!" in raw_logs.parse("acme", items(day, "acme")[acme.index(encoded[0])]).message
    assert any(i["service"].startswith("Error: ") for i in items(day, "autodiscover"))
    assert any(i["user"] is None for i in items(day, "ratelimited"))
    assert any('"password":"*"' in i["data"] for i in items(day, "api"))


def _dovecot_deliveries(sim: Simulation) -> list[dovecot.Delivery]:
    return [d for i in items(sim, "dovecot") if (d := dovecot.parse(i["message"])) is not None]


def test_every_lmtp_delivery_has_its_dovecot_line_with_the_same_message_id(day):
    postfix = list(reversed(items(day, "postfix")))
    message_ids = {}
    for line in postfix:
        if m := re.match(r"(\w+): message-id=<(.*)>$", line["message"]):
            message_ids[m.group(1)] = m.group(2) or None
    handed_over = Counter()
    for line in postfix:
        m = re.match(r"(\w+): to=<([^>]+)>, (?:orig_to=<[^>]+>, )?relay=dovecot\[", line["message"])
        if m and m.group(1) in message_ids:
            handed_over[(message_ids[m.group(1)], m.group(2))] += 1
    logged = Counter((d.message_id, d.recipient) for d in _dovecot_deliveries(day))
    assert handed_over and logged == handed_over
    outcomes = Counter(d.outcome for d in _dovecot_deliveries(day))
    assert set(outcomes) == {"stored", "discarded", "redirected", "rejected", "failed"}
    assert outcomes["stored"] > 0.8 * sum(outcomes.values())
    mailboxes = {d.mailbox for d in _dovecot_deliveries(day) if d.outcome == "stored"}
    assert {"INBOX", "Junk"} < mailboxes


def test_a_full_mailbox_bounces_in_postfix_and_fails_in_dovecot(day):
    failed = [d for d in _dovecot_deliveries(day) if d.outcome == "failed"]
    assert failed and all(d.detail == "Quota exceeded (mailbox for user is full)" for d in failed)
    postfix = "\n".join(i["message"] for i in items(day, "postfix"))
    for d in failed:
        assert f"status=bounced (host dovecot[172.22.1.250] said: 552 5.2.2 <{d.recipient}> Quota exceeded" in postfix


def test_ground_truth_says_what_the_dovecot_lines_say(day):
    truth = day.service_truth()["deliveries"]
    parsed = Counter((d.message_id, d.recipient, d.outcome, d.mailbox) for d in _dovecot_deliveries(day))
    recorded = Counter((t["message_id"], t["recipient"], t["delivery"], t["mailbox"]) for t in truth)
    assert parsed == recorded and len(truth) > 1000
    redirects = {(d.message_id, d.recipient): d.detail for d in _dovecot_deliveries(day) if d.outcome == "redirected"}
    assert redirects == {(t["message_id"], t["recipient"]): t["detail"] for t in truth if t["delivery"] == "redirected"}
    by_key = {(d.message_id, d.recipient): d for d in _dovecot_deliveries(day)}
    seen = Counter()
    for message in day.ground_truth():
        for rcpt in message["recipients"]:
            if rcpt["delivery"] is None or message["message_id"] is None:
                continue
            line = by_key[(message["message_id"], rcpt["address"])]
            assert (line.outcome, line.mailbox) == (rcpt["delivery"], rcpt["mailbox"]), (message["id"], rcpt)
            assert rcpt["status"] == ("bounced" if rcpt["delivery"] == "failed" else "delivered")
            seen[rcpt["delivery"]] += 1
    assert set(seen) == {"stored", "discarded", "redirected", "rejected", "failed"}


def test_line_totals_count_every_line_logged(mailcow, sim):
    served = httpx.get(f"{mailcow.url}/sim/ground-truth/services").json()
    truth = sim.service_truth()
    assert served == truth
    for service in raw_logs.SERVICES:
        assert truth["lines"][service] == truth["held"][service] == len(items(sim, service)), service
    assert truth["caps"]["autodiscover"] == 101 and truth["caps"]["rspamd-history"] == 1000
    assert truth["caps"]["dovecot"] == 10000


def test_a_busy_rate_fills_every_mail_driven_list_to_its_cap(live_app):
    clock = SIM_START
    state = MailcowState(log_cap=1000)  # mailcow's 10,000 scaled down with the rate, to keep the test short
    simulation = Simulation(state, seed=4, start=clock - 120, rate_per_minute=2000, clock=lambda: clock)
    simulation.advance()
    truth = simulation.service_truth()
    for service in ("postfix", "dovecot", "sogo", "autodiscover", "rspamd-history"):
        assert truth["lines"][service] > truth["caps"][service] == truth["held"][service], service
    assert truth["caps"]["autodiscover"] == 101
    server = live_app(create_simulator_app(simulation, RO_KEY, RW_KEY, advance_on_request=False))
    assert len(get_log(server, "dovecot", 20000)) == 1000 and len(get_log(server, "autodiscover", 500)) == 101
    assert get_log(server, "dovecot", 5) == items(simulation, "dovecot")[:5]
    for service in ("ratelimited", "api", "watchdog", "acme"):
        assert 0 < truth["lines"][service] == truth["held"][service], service


def test_same_seed_same_lines_in_every_list():
    def run() -> dict[str, list]:
        simulation = Simulation(MailcowState(), seed=8, start=0, rate_per_minute=20, clock=lambda: 3600)
        simulation.advance()
        return {s: items(simulation, s) for s in raw_logs.SERVICES}

    assert run() == run()


def test_api_log_masks_passwords(mailcow, sim):
    body = {"items": ["alice@example.org"], "attr": {"password": "hunter2", "password2": "hunter2", "active": "1"}}
    httpx.post(f"{mailcow.url}/api/v1/edit/mailbox", headers={"X-API-Key": RW_KEY}, json=body)
    logged = get_log(mailcow, "api", 2)[1]  # [0] is this read
    assert logged["uri"] == "/api/v1/edit/mailbox" and logged["method"] == "POST"
    assert logged["data"] == 'items=\'["alice@example.org"]\', attr=\'{"password":"*","password2":"*","active":"1"}\''
    assert "hunter2" not in str(sim.state.logs["api"])
