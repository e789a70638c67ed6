"""Acceptance: 20,000+ simulated mails ingested and correlated match the simulator's ground truth."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from exporter.app import create_app
from tests.conftest import SIM_START, make_config
from tests.mailflow import all_messages, expected_status, scenario


def _key_queue_id(truth: dict) -> str | None:
    """The queue id whose lifecycle carries the mail's outcome in our model."""
    ids = truth["queue_ids"]
    if not ids:
        return None
    if any(r["status"] == "bounced" for r in truth["recipients"]):
        return ids[-2]  # the original that bounced (its NDN is the last queue id; a greylisted attempt may precede)
    if truth["rspamd_action"] == "reject":
        return ids[0]  # rejected in DATA
    return ids[-1]  # after greylisting, the accepted retry


@pytest.fixture(scope="module")
def outcome(databases):
    """Run the scenario once for the module: (ground truth, every message from the API, test client)."""
    with scenario(databases, SIM_START, rate=200, seed=21) as (rig, pool, url):
        rig.run(112 * 60, every=120)  # 112 simulated minutes at 200 mails/min
        rig.sim.rate = 0
        rig.run(6 * 3600, every=1800)  # let every deferral finish
        client = create_app(make_config(url), pool).test_client()
        yield rig.sim.ground_truth(), list(all_messages(client)), client


def test_scenario_is_big_and_covers_every_kind(outcome):
    truth, _, _ = outcome
    assert len(truth) >= 20_000
    statuses = Counter(r["status"] for m in truth for r in m["recipients"])
    assert {"delivered", "rejected", "bounced"} <= set(statuses)
    assert all(m["complete"] for m in truth)


def test_every_message_has_the_right_status_direction_and_verdict(outcome):
    truth, messages, client = outcome
    by_queue = {m["queue_id"]: m for m in messages if m["queue_id"]}
    rejected = Counter((m["recipient"], m["first_seen"]) for m in messages if m["queue_id"] is None and m["recipient"])
    checked, wrong = Counter(), Counter()
    for mail in truth:
        qid = _key_queue_id(mail)
        kind = "noqueue" if qid is None else mail["direction"]
        checked[kind] += 1
        if qid is None:
            rcpt = mail["recipients"][0]
            found = [rejected[(rcpt["address"], _iso(mail["received_at"] + d))] for d in (1, 2)]
            if not any(found):
                wrong["noqueue missing"] += 1
            continue
        ours = by_queue.get(qid)
        if ours is None:
            wrong["missing"] += 1
            continue
        if ours["direction"] != mail["direction"]:
            wrong[f"direction {mail['direction']}->{ours['direction']}"] += 1
        if ours["is_spam"] != any(r["spam"] for r in mail["recipients"]):
            wrong["spam verdict"] += 1
        expected = {r["address"]: expected_status(r, mail) for r in mail["recipients"]}
        if len(expected) == 1:
            (status,) = expected.values()
            if (ours["recipient"], ours["final_status"]) != (next(iter(expected)), status):
                wrong[f"status {status}->{ours['final_status']}"] += 1
        else:
            details = client.get(f"/api/message/{ours['correlation_key']}/details").get_json()
            got = {r["recipient"]: r["status"] for r in details["recipient_details"]}
            if got != expected:
                wrong["multi-recipient status"] += 1
    total = sum(checked.values())
    accuracy = 100.0 * (total - sum(wrong.values())) / total
    print(f"\nground truth: {total} mails {dict(checked)}; accuracy {accuracy:.3f}%; wrong {dict(wrong)}")
    assert not wrong
    assert accuracy == 100.0


def test_greylisted_first_attempt_is_recorded_as_temporary(outcome):
    truth, messages, _ = outcome
    by_queue = {m["queue_id"]: m for m in messages if m["queue_id"]}
    greylisted = [
        m
        for m in truth
        if len(m["queue_ids"]) == 2
        and m["rspamd_action"] == "no action"
        and not any(r["status"] == "bounced" for r in m["recipients"])
    ]
    assert greylisted
    for mail in greylisted:
        first = by_queue[mail["queue_ids"][0]]
        assert (first["final_status"], first["reject_class"], first["is_complete"]) == ("deferred", "greylist", True)


def test_bounces_link_to_their_notification(outcome):
    truth, messages, client = outcome
    by_queue = {m["queue_id"]: m for m in messages if m["queue_id"]}
    bounced = [m for m in truth if any(r["status"] == "bounced" for r in m["recipients"])][:20]
    assert bounced
    for mail in bounced:
        original, notification = mail["queue_ids"][-2:]
        details = client.get(f"/api/message/{by_queue[original]['correlation_key']}/details").get_json()
        assert details["bounce_notification"]["queue_id"] == notification
        ndn = client.get(f"/api/message/{details['bounce_notification']['correlation_key']}/details").get_json()
        assert ndn["bounce_of"]["queue_id"] == original
        assert ndn["recipients"] == [mail["sender"]] and ndn["final_status"] == "delivered"


def test_alias_expansion_shows_orig_to(outcome):
    truth, messages, client = outcome
    by_queue = {m["queue_id"]: m for m in messages if m["queue_id"]}
    aliased = [m for m in truth if any(r["orig_to"] for r in m["recipients"])][:20]
    for mail in aliased:
        details = client.get(f"/api/message/{by_queue[_key_queue_id(mail)]['correlation_key']}/details").get_json()
        got = {(r["recipient"], r["orig_to"]) for r in details["recipient_details"]}
        assert got == {(r["address"], r["orig_to"]) for r in mail["recipients"]}


def test_mail_without_message_id_is_listed(outcome):
    truth, messages, _ = outcome
    by_queue = {m["queue_id"]: m for m in messages if m["queue_id"]}
    without = [m for m in truth if m["message_id"] is None and m["queue_ids"]]
    assert without
    assert all(by_queue[_key_queue_id(m)]["message_id"] is None for m in without)


def test_every_mailbox_outcome_matches_what_dovecot_did(outcome):
    """What the mailbox did (Dovecot's LMTP and Sieve lines), per recipient: the outcome and the folder,
    every mail without a Message-ID among them (matched by LMTP session). Dovecot's reply to a delivery
    that failed (552/451) names no session, so such a line of a mail without Message-ID has no link: its
    recipient keeps Postfix's bounce or deferral, without the mailbox's reason."""
    truth, messages, client = outcome
    by_queue = {m["queue_id"]: m for m in messages if m["queue_id"]}
    kinds, wrong, without_id = Counter(), Counter(), 0
    for mail in truth:
        linked = mail["message_id"] is not None
        delivered = [r for r in mail["recipients"] if r.get("delivery") and (linked or r["delivery"] != "failed")]
        kind = (delivered[0]["delivery"], delivered[0]["mailbox"]) if delivered else None
        if not delivered or (kinds[kind] > 40 and linked):
            continue  # every kind, at most 40 mails of each (a details request per mail)
        kinds[kind] += 1
        without_id += not linked
        ours = by_queue[_key_queue_id(mail)]
        details = client.get(f"/api/message/{ours['correlation_key']}/details").get_json()
        got = {
            r["recipient"]: ((r["delivery"] or {}).get("outcome"), (r["delivery"] or {}).get("mailbox"))
            for r in details["recipient_details"]
        }
        for r in delivered:
            if got.get(r["address"]) != (r["delivery"], r["mailbox"]):
                wrong[f"{r['delivery']} {r['mailbox']} -> {got.get(r['address'])}"] += 1
    assert {kind for kind, _ in kinds} == {"stored", "discarded", "redirected", "rejected", "failed"}
    assert without_id
    assert not wrong, dict(wrong)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
