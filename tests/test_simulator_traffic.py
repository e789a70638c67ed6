"""Simulated traffic is realistic and its ground truth agrees with the log lines it wrote."""

from __future__ import annotations

import re
from collections import Counter

from exporter.simulator.state import MailcowState
from exporter.simulator.traffic import Simulation
from tests.conftest import SIM_START


def _postfix_messages(sim: Simulation) -> list[str]:
    return [item["message"] for item in sim.state.logs["postfix"]]


def test_same_seed_same_traffic():
    def run() -> list:
        simulation = Simulation(MailcowState(), seed=11, start=0, rate_per_minute=20, clock=lambda: 1800)
        simulation.advance()
        return list(simulation.state.logs["postfix"])

    assert run() == run()


def test_traffic_mix_covers_every_outcome(sim):
    truth = sim.ground_truth()
    directions = Counter(m["direction"] for m in truth)
    statuses = Counter(r["status"] for m in truth for r in m["recipients"])
    assert {"inbound", "outbound", "internal"} <= set(directions)
    assert {"delivered", "rejected", "bounced"} <= set(statuses)
    assert any(len(m["recipients"]) > 1 for m in truth)
    assert any(r["orig_to"] for m in truth for r in m["recipients"])
    assert any(m["message_id"] is None for m in truth)
    lines = "\n".join(_postfix_messages(sim))
    for marker in (
        "PREGREET",
        "DNSBL rank",
        "NOQUEUE: reject",
        "Relay access denied",
        "milter-reject",
        "sender non-delivery notification",
        "status=deferred",
        "sasl_username=",
    ):
        assert marker in lines, marker


def test_every_delivered_recipient_has_its_sent_line(sim):
    lines = _postfix_messages(sim)
    for message in sim.ground_truth():
        for rcpt in message["recipients"]:
            if rcpt["status"] != "delivered":
                continue
            assert any(
                line.startswith(f"{qid}: to=<{rcpt['address']}>") and "status=sent" in line
                for qid in message["queue_ids"]
                for line in lines
            ), (message["id"], rcpt)


def test_deferred_mail_is_queued_then_delivered_hours_later():
    clock = {"now": SIM_START}
    simulation = Simulation(MailcowState(), seed=5, start=SIM_START, rate_per_minute=0, clock=lambda: clock["now"])
    message = simulation.inject("outbound_deferred")
    simulation.advance(SIM_START + 60)
    qid = message.queue_ids[0]
    assert simulation.state.queue[qid]["queue_name"] == "deferred"
    assert re.search(r"\(connect to .+: Connection timed out\)$", simulation.state.queue[qid]["recipients"][0])
    assert message.recipients[0].status == "deferred"
    simulation.advance(SIM_START + 5 * 3600)
    assert qid not in simulation.state.queue
    assert message.recipients[0].status == "delivered"
    sent = [
        i
        for i in simulation.state.logs["postfix"]
        if i["message"].startswith(f"{qid}: to=") and "status=sent" in i["message"]
    ]
    assert sent and int(sent[0]["time"]) - SIM_START >= 1800


def test_sasl_failures_lead_to_a_ban_and_an_unban():
    simulation = Simulation(MailcowState(), seed=2, start=SIM_START, rate_per_minute=0, clock=lambda: SIM_START)
    for i in range(10):
        simulation.netfilter_attempt(SIM_START + i, "193.46.255.40", 3, "warning: SASL LOGIN authentication failed")
    messages = [i["message"] for i in simulation.state.logs["netfilter"]]
    assert messages[0] == "Banning 193.46.255.40/32 for 30 minutes"
    assert "1 more attempts in the next 600 seconds until 193.46.255.40/32 is banned" in messages
    simulation.advance(SIM_START + 31 * 60)
    assert simulation.state.logs["netfilter"][0]["message"] == "Unbanning 193.46.255.40/32"
    assert not simulation.state.active_bans


def test_container_restart_is_visible_in_status_and_watchdog_log():
    simulation = Simulation(MailcowState(), seed=4, start=SIM_START, rate_per_minute=0, clock=lambda: SIM_START)
    simulation.inject("container_restart")
    simulation.advance(SIM_START)
    restarting = [n for n, c in simulation.state.containers.items() if c["state"] == "restarting"]
    assert len(restarting) == 1
    assert simulation.state.logs["watchdog"][0]["message"] == f"Sending restart command to {restarting[0]}..."
    before = simulation.state.containers[restarting[0]]["started_at"]
    simulation.advance(SIM_START + 30)
    after = simulation.state.containers[restarting[0]]
    assert after["state"] == "running" and after["started_at"] > before


def test_deliveries_grow_mailbox_usage_and_vmail():
    simulation = Simulation(MailcowState(), seed=9, start=SIM_START, rate_per_minute=0, clock=lambda: SIM_START)
    used = simulation.state.vmail_used_bytes
    message = simulation.inject("internal")
    simulation.advance(SIM_START + 10)
    assert all(r.status == "delivered" for r in message.recipients)
    assert simulation.state.vmail_used_bytes == used + 48_000 * len(message.recipients)
