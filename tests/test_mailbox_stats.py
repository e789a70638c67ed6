"""Mailbox statistics against counts computed independently from the simulator's ground truth."""

from __future__ import annotations

from collections import Counter

import pytest

from exporter.app import create_app
from exporter.simulator.state import ALIASES, MAILBOXES
from exporter.worker.loop import Worker
from tests.conftest import SIM_START, make_config
from tests.mailflow import expected_status, scenario


@pytest.fixture(scope="module")
def stats(databases):
    with scenario(databases, SIM_START, rate=40, seed=13) as (rig, pool, url):
        rig.run(90 * 60, every=300)
        rig.sim.rate = 0
        rig.run(6 * 3600, every=1800)  # every deferral ends
        config = make_config(url, rig.mailcow_url)
        Worker(config, pool, rig.ingestor.client).sync_accounts()
        client = create_app(config, pool).test_client()
        with_quota = create_app(make_config(url, rig.mailcow_url, metrics_mailbox_quota=True), pool).test_client()
        yield rig.sim.ground_truth(), client, with_quota


def expected(truth: list[dict]) -> tuple[Counter, Counter, Counter]:
    """(sent, received, failed) per address, from what the simulation really did."""
    sent, received, failed = Counter(), Counter(), Counter()
    for message in truth:
        sender = message["sender"].lower()
        sent[sender] += 1
        statuses = [expected_status(r, message) for r in message["recipients"]]
        if any(s in ("bounced", "expired") for s in statuses) or (statuses and all(s == "rejected" for s in statuses)):
            failed[sender] += 1
        for address in {(r["orig_to"] or r["address"]).lower() for r in message["recipients"]}:
            received[address] += 1
        if "bounced" in statuses:  # the sender gets a non-delivery notification: mail received too
            received[sender] += 1
    return sent, received, failed


def all_rows(client, **params) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in {"date_range": "90days", "page_size": 100, **params}.items())
    return client.get(f"/api/mailbox-stats/all?{query}").get_json()["mailboxes"]


def test_every_mailbox_and_alias_matches_the_ground_truth(stats):
    truth, client, _ = stats
    sent, received, failed = expected(truth)
    rows = {r["username"]: r for r in all_rows(client)}
    assert set(rows) == {address for address, _ in MAILBOXES}
    assert sum(received[a] for a, _ in MAILBOXES) > 200 and sum(sent[a] for a, _ in MAILBOXES) > 50
    for address, row in rows.items():
        counts = row["mailbox_counts"]
        assert (counts["sent_total"], counts["received_total"], counts["sent_failed"]) == (
            sent[address],
            received[address],
            failed[address],
        ), address
        for alias in row["aliases"]:
            assert alias["received_total"] == received[alias["alias_address"]], alias["alias_address"]
        assert row["combined_received"] == received[address] + sum(received[a["alias_address"]] for a in row["aliases"])
    team = {a["alias_address"] for a in rows["alice@example.org"]["aliases"]}
    assert team == {a for a, targets in ALIASES.items() if "alice@example.org" in targets}


def test_summary_totals_are_the_sum_of_the_addresses(stats):
    truth, client, _ = stats
    sent, received, failed = expected(truth)
    addresses = {a for a, _ in MAILBOXES} | set(ALIASES)
    body = client.get("/api/mailbox-stats/summary?date_range=90days").get_json()
    assert body["total_mailboxes"] == len(MAILBOXES) and body["inactive_mailboxes"] == 0
    assert body["total_sent"] == sum(sent[a] for a in addresses)
    assert body["total_received"] == sum(received[a] for a in addresses)
    assert body["sent_failed"] == sum(failed[a] for a in addresses)


def test_filters_sorting_and_pagination_happen_in_sql(stats):
    _, client, _ = stats
    by_received = all_rows(client, sort_by="received_total", sort_order="desc")
    counts = [r["mailbox_counts"]["received_total"] for r in by_received]
    assert counts == sorted(counts, reverse=True)
    page = client.get("/api/mailbox-stats/all?date_range=90days&page_size=10&page=1&domain=example.net").get_json()
    assert page["total"] == 2 and {r["domain"] for r in page["mailboxes"]} == {"example.net"}
    searched = all_rows(client, search="team")
    assert {r["username"] for r in searched} == {"alice@example.org", "bob@example.org"}
    by_name = [r["username"] for r in all_rows(client, sort_by="username", sort_order="asc")]
    assert by_name == sorted(by_name)
    far = client.get("/api/mailbox-stats/all?date_range=90days&page_size=10&page=9").get_json()
    assert far["total"] == len(MAILBOXES) and far["mailboxes"] == []
    assert client.get("/api/mailbox-stats/all?sort_by=nonsense").status_code == 400
    domains = client.get("/api/mailbox-stats/domains").get_json()["domains"]
    assert domains == [{"domain": "example.net", "mailbox_count": 2}, {"domain": "example.org", "mailbox_count": 4}]
    quota = by_name[0]
    assert quota  # every row carries its quota fields
    row = all_rows(client, search="carol")[0]
    assert row["quota"] > 0 and row["percent_in_use"] == round(100 * row["quota_used"] / row["quota"], 1)


def test_per_mailbox_quota_metrics_only_when_enabled(stats):
    _, client, with_quota = stats
    assert "mailcow_mailbox_quota_used_ratio" not in client.get("/metrics").get_data(as_text=True)
    text = with_quota.get("/metrics").get_data(as_text=True)
    carol = all_rows(client, search="carol")[0]
    line = next(
        x for x in text.splitlines() if x.startswith('mailcow_mailbox_quota_used_ratio{mailbox="carol@example.net"}')
    )
    assert float(line.split()[-1]) == pytest.approx(carol["quota_used"] / carol["quota"])
    assert 'mailbox="ops@example.org"' not in text  # no quota, no ratio
