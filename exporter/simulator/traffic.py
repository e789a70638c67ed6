"""Seeded, continuous mail traffic in mailcow's real log formats, with its ground truth.

Each arriving mail is a scenario that schedules timed events (log lines, queue and
quarantine changes); `Simulation.advance(now)` applies every event up to `now`. The
simulation records per recipient what really happened, so tests can compare our
correlation with it.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporter.simulator import dovecot
from exporter.simulator.services import Background
from exporter.simulator.state import ALIASES, LOCAL_DOMAINS, MAILBOXES, MailcowState, docker_time

DOVECOT = "dovecot[172.22.1.250]:24"
_SESSION_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"  # of an LMTP session id
EXTERNAL_SENDERS = (
    ("news@shop.example.com", "mail-out.shop.example.com"),
    ("j.doe@gmail.com", "mail-wr1-f49.google.com"),
    ("m.smith@outlook.com", "mail-db8eur05on2101.outbound.protection.outlook.com"),
    ("info@partner.example.com", "mx.partner.example.com"),
    ("k.meier@web.de", "mout.web.de"),
    ("billing@service.example.com", "unknown"),
)
EXTERNAL_RECIPIENTS = (
    ("j.doe@gmail.com", "gmail-smtp-in.l.google.com", "142.251.173.26"),
    ("m.smith@outlook.com", "outlook-com.olc.protection.outlook.com", "52.101.41.4"),
    ("k.meier@web.de", "mx-ha03.web.de", "212.227.17.26"),
    ("ceo@partner.example.com", "mx.partner.example.com", "198.51.100.7"),
    ("nobody@partner.example.com", "mx.partner.example.com", "198.51.100.7"),
)
SUBJECTS = (
    "Re: meeting tomorrow",
    "Invoice 2026-118",
    "Your order has shipped",
    "Quarterly report",
    "Lunch?",
    "Password reset",
    "Newsletter November",
    "Fwd: contract draft",
)
SPAM_SUBJECTS = ("You won a prize!!!", "Cheap meds", "URGENT: verify your account", "Crypto opportunity")


@dataclass
class Recipient:
    address: str
    status: str = "pending"
    orig_to: str | None = None
    spam: bool = False
    delivery: str | None = None  # what Dovecot did: stored | discarded | redirected | rejected | failed
    mailbox: str | None = None  # the folder it stored into (or a failed store aimed at)


@dataclass
class Message:
    """Ground truth of one mail as the simulation made it happen.

    queue_ids in the order Postfix assigned them: a greylisted attempt, the accepted one, then (if a
    recipient bounced) the non-delivery notification, always last.
    """

    id: int
    direction: str
    sender: str
    received_at: int
    message_id: str | None
    subject: str
    recipients: list[Recipient]
    queue_ids: list[str] = field(default_factory=list)
    rspamd_action: str | None = None
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "sender": self.sender,
            "received_at": self.received_at,
            "message_id": self.message_id,
            "subject": self.subject,
            "queue_ids": list(self.queue_ids),
            "rspamd_action": self.rspamd_action,
            "complete": self.pending == 0,
            "recipients": [
                {
                    "address": r.address,
                    "orig_to": r.orig_to,
                    "status": r.status,
                    "spam": r.spam,
                    "delivery": r.delivery,
                    "mailbox": r.mailbox,
                }
                for r in self.recipients
            ],
        }


Effect = Callable[[], None]


class Simulation:
    """Generates traffic into a `MailcowState` from a seed, at `rate_per_minute` mails."""

    def __init__(
        self,
        state: MailcowState,
        seed: int = 1,
        start: float | None = None,
        rate_per_minute: float = 6.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.rng = random.Random(seed)
        self.rate = rate_per_minute
        self.clock = clock
        self.now = int(start if start is not None else clock())
        self._next_arrival = float(self.now)
        self._events: list[tuple[int, int, Effect]] = []
        self._seq = itertools.count()
        self._message_ids = itertools.count(1)
        self._pids = itertools.count(1000)
        self.messages: list[Message] = []
        self._used_qids: set[str] = set()
        self._qid_owner: dict[str, Message] = {}
        self._generation: dict[str, int] = {}
        # Dovecot's Sieve outcomes and the other services draw from their own generators: the mail traffic
        # of a seed is the same with or without them
        self._dovecot_rng = random.Random(f"dovecot-{seed}")
        self._bounced: set[str] = set()  # queue ids a notification of a mailbox's refusal was sent for
        self.deliveries: list[dict[str, Any]] = []  # every Dovecot LMTP delivery logged (NDNs included)
        self.services = Background(seed, self.now, self._at, state.push)
        with state.lock:
            state.start_containers(self.now)

    # --- driving --------------------------------------------------------------------

    def advance(self, until: float | None = None) -> None:
        """Generate arrivals and apply every scheduled event up to `until` (default: the clock)."""
        target = int(self.clock() if until is None else until)
        with self.state.lock:
            if self.rate > 0:
                while self._next_arrival <= target:
                    self._arrive(int(self._next_arrival))
                    self._next_arrival += self.rng.expovariate(self.rate / 60.0)
            self.services.generate(target, self.rate)
            while self._events and self._events[0][0] <= target:
                at, _, effect = heapq.heappop(self._events)
                self.now = at
                effect()
            self.now = max(self.now, target)

    def inject(self, scenario: str, at: int | None = None, **options: Any) -> Message | None:
        """Start one named scenario now (tests use this to build exact situations)."""
        with self.state.lock:
            return getattr(self, f"_scenario_{scenario}")(self.now if at is None else at, **options)

    def ground_truth(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [m.as_dict() for m in self.messages]

    def service_truth(self) -> dict[str, Any]:
        """Per list: lines ever logged (`lines`), what it keeps (`caps`) and holds now (`held`); and every
        Dovecot LMTP delivery logged (`deliveries`), so a test can count lost or doubled lines per service."""
        with self.state.lock:
            held = {name: len(items) for name, items in self.state.logs.items()}
            held["rspamd-history"] = len(self.state.rspamd_history)
            caps = {name: items.maxlen for name, items in self.state.logs.items()}
            caps["rspamd-history"] = self.state.rspamd_history.maxlen
            return {
                "lines": dict(self.state.pushed),
                "caps": caps,
                "held": held,
                "deliveries": [dict(d) for d in self.deliveries],
            }

    # --- event plumbing ---------------------------------------------------------------

    def _at(self, when: float, effect: Effect, owner: Message | None = None) -> None:
        if owner is not None:
            owner.pending += 1

            def wrapped(effect: Effect = effect) -> None:
                owner.pending -= 1
                effect()

            effect = wrapped
        heapq.heappush(self._events, (int(when), next(self._seq), effect))

    def _alive(self, qid: str | None) -> Callable[[], bool]:
        """A check that is true while the schedule made now for `qid` still applies."""
        if qid is None:
            return lambda: True
        gen = self._generation.get(qid, 0)
        return lambda: self._generation.get(qid, 0) == gen

    def _cancel(self, qid: str) -> None:
        self._generation[qid] = self._generation.get(qid, 0) + 1

    def _log(
        self,
        when: float,
        program: str,
        message: str,
        priority: str = "info",
        owner: Message | None = None,
        qid: str | None = None,
    ) -> None:
        item = {"time": str(int(when)), "program": program, "priority": priority, "message": message}
        alive = self._alive(qid)

        def push() -> None:
            if alive():
                self.state.push("postfix", item)

        self._at(when, push, owner)

    def _push_at(self, when: float, service: str, item: dict[str, Any], owner: Message | None = None) -> None:
        self._at(when, lambda: self.state.push(service, item), owner)

    def _qid(self, rng: random.Random | None = None) -> str:
        rng = rng or self.rng
        while True:
            qid = "".join(rng.choice("0123456789ABCDEF") for _ in range(rng.choice((10, 11, 11, 12))))
            if qid not in self._used_qids:
                self._used_qids.add(qid)
                return qid

    def _ip(self) -> str:
        if self.rng.random() < 0.1:
            return f"2001:db8:{self.rng.randrange(1, 0xFFFF):x}::{self.rng.randrange(1, 0xFFFF):x}"
        return (
            f"{self.rng.choice((45, 80, 91, 185, 193, 203))}.{self.rng.randrange(256)}."
            f"{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
        )

    def _mid(self, domain: str) -> str:
        return f"{self.rng.getrandbits(64):016x}.{next(self._message_ids)}@{domain}"

    def _new_message(
        self,
        direction: str,
        sender: str,
        at: int,
        recipients: list[Recipient],
        subject: str,
        with_message_id: bool = True,
    ) -> Message:
        msg = Message(
            id=len(self.messages) + 1,
            direction=direction,
            sender=sender,
            received_at=at,
            message_id=self._mid(sender.split("@")[-1] or "localhost") if with_message_id else None,
            subject=subject,
            recipients=recipients,
        )
        self.messages.append(msg)
        return msg

    def _delays(self, total: float) -> str:
        a = round(total * 0.6, 2)
        return f"delay={round(total, 2)}, delays={a}/0.01/0.02/{round(max(total - a - 0.03, 0), 2)}"

    def _rspamd_row(
        self, when: float, msg: Message, ip: str, user: str, action: str, score: float, rcpts: list[str], size: int
    ) -> None:
        symbols: dict[str, Any] = {}
        if user != "unknown":
            symbols["MAILCOW_AUTH"] = {
                "name": "MAILCOW_AUTH",
                "score": -20.0,
                "metric_score": -20.0,
                "description": "mailcow authenticated",
            }
        if action in ("reject", "add header"):
            symbols["BAYES_SPAM"] = {
                "name": "BAYES_SPAM",
                "score": 5.1,
                "metric_score": 5.1,
                "description": "Message probably spam, probability: ",
                "options": ["99.91%"],
            }
            symbols["RBL_SPAMHAUS_XBL"] = {
                "name": "RBL_SPAMHAUS_XBL",
                "score": 4.0,
                "metric_score": 4.0,
                "description": "From address is listed in XBL",
                "options": [ip],
            }
        else:
            symbols["BAYES_HAM"] = {
                "name": "BAYES_HAM",
                "score": -1.8,
                "metric_score": -3.0,
                "description": "Message probably ham, probability: ",
                "options": ["97.52%"],
            }
        symbols["RCPT_MAILCOW_DOMAIN"] = {
            "name": "RCPT_MAILCOW_DOMAIN",
            "score": 0.0,
            "metric_score": 0.0,
            "options": [rcpts[0].split("@")[-1]],
        }
        row = {
            "is_skipped": False,
            "score": score,
            "required_score": 15.0,
            "action": action,
            "thresholds": {"reject": 15.0, "add header": 8.0, "greylist": 7.0},
            "symbols": symbols,
            "message-id": msg.message_id or "undef",
            "time_real": round(self.rng.uniform(0.05, 0.9), 6),
            "sender_smtp": msg.sender,
            "sender_mime": msg.sender,
            "rcpt_smtp": rcpts,
            "rcpt_mime": rcpts,
            "user": user,
            "unix_time": int(when),
            "subject": msg.subject,
            "size": size,
            "ip": ip,
        }
        self._push_at(when, "rspamd-history", row, msg)

    # --- arrivals ---------------------------------------------------------------------

    _WEIGHTS = (
        ("inbound", 34),
        ("inbound_spam", 6),
        ("inbound_reject_spam", 4),
        ("inbound_greylist", 4),
        ("inbound_alias", 8),
        ("inbound_forward", 3),
        ("outbound", 16),
        ("outbound_deferred", 4),
        ("outbound_bounce", 3),
        ("internal", 8),
        ("noqueue_unknown", 4),
        ("noqueue_relay", 2),
        ("postscreen_rbl", 2),
        ("postscreen_pregreet", 2),
        ("sasl_failure", 3),
        ("container_restart", 0.2),
    )

    def _arrive(self, at: int) -> None:
        names = [n for n, _ in self._WEIGHTS]
        weights = [w for _, w in self._WEIGHTS]
        getattr(self, f"_scenario_{self.rng.choices(names, weights)[0]}")(at)

    def _smtp_in(self, at: int, msg: Message, host: str, ip: str, rcpt_count: int) -> str:
        """Connection, client= and cleanup lines of an inbound SMTP session; returns the queue id."""
        port = self.rng.randrange(30000, 65000)
        qid = self._qid()
        msg.queue_ids.append(qid)
        self._qid_owner[qid] = msg
        self._log(at, "postfix/postscreen", f"CONNECT from [{ip}]:{port} to [172.22.1.253]:25", owner=msg)
        self._log(at, "postfix/postscreen", f"PASS {self.rng.choice(('OLD', 'NEW'))} [{ip}]:{port}", owner=msg)
        self._log(at, "postfix/smtpd", f"connect from {host}[{ip}]", owner=msg)
        self._log(
            at + 1,
            "postfix/smtpd",
            f"Anonymous TLS connection established from {host}[{ip}]: TLSv1.3 "
            "with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
            owner=msg,
        )
        self._log(at + 1, "postfix/smtpd", f"{qid}: client={host}[{ip}]", owner=msg)
        self._log(at + 2, "postfix/cleanup", f"{qid}: message-id=<{msg.message_id or ''}>", owner=msg)
        self._log(
            at + 3,
            "postfix/smtpd",
            f"disconnect from {host}[{ip}] ehlo=2 starttls=1 mail=1 "
            f"rcpt={rcpt_count} data=1 quit=1 commands={5 + rcpt_count}",
            owner=msg,
        )
        return qid

    def _deliver_local(self, when: float, msg: Message, qid: str, rcpt: Recipient, folder: str = "INBOX") -> None:
        """LMTP to Dovecot: Postfix's relay=dovecot line and what the mailbox's Sieve did (dovecot list).

        `folder` "Junk" marks spam (mailcow's global Sieve files it there); which outcome a recipient
        gets otherwise is drawn from the Dovecot generator, so the mail traffic's own draws are unchanged.
        """
        orig = f"orig_to=<{rcpt.orig_to}>, " if rcpt.orig_to else ""
        session = "".join(self.rng.choice(_SESSION_CHARS) for _ in range(22))
        plan = dovecot.choose(self._dovecot_rng, spam=folder == "Junk")
        delays = self._delays(self.rng.uniform(0.05, 1.5))
        if plan.accepted:
            status = f"dsn=2.0.0, status=sent (250 2.0.0 <{rcpt.address}> {session} Saved)"
        else:  # quota_full_tempfail = no (Dovecot's default): a permanent 552 that Postfix bounces
            status = (
                f"dsn=5.2.2, status=bounced (host {DOVECOT.removesuffix(':24')} said: 552 5.2.2 <{rcpt.address}> "
                f"{plan.detail} (in reply to end of DATA command))"
            )
        self._log(
            when,
            "postfix/lmtp",
            f"{qid}: to=<{rcpt.address}>, {orig}relay={DOVECOT}, {delays}, {status}",
            owner=msg,
            qid=qid,
        )
        self._dovecot_delivery(when, msg, rcpt.address, session, plan, qid)
        alive = self._alive(qid)

        def done() -> None:
            if not alive():
                return
            rcpt.delivery, rcpt.mailbox = plan.outcome, plan.mailbox
            if not plan.accepted:
                rcpt.status = "bounced"
                return
            rcpt.status = "delivered"
            if plan.outcome != "stored":
                return
            usage = self.state.mailbox_usage.get(rcpt.address)
            if usage is not None:
                usage["messages"] += 1
                usage["quota_used"] += 48_000
            self.state.vmail_used_bytes += 48_000

        self._at(when, done, msg)
        if not plan.accepted and qid not in self._bounced:  # one notification per queue file, for all refusals
            self._bounced.add(qid)
            self._bounce_notice(when, msg, qid)

    def _dovecot_delivery(
        self,
        when: float,
        msg: Message | None,
        rcpt: str,
        session: str,
        plan: dovecot.DeliveryPlan,
        qid: str | None = None,
        message_id: str | None = None,
        sender: str | None = None,
    ) -> None:
        """Dovecot's LMTP lines for one recipient, and their ground truth once they are logged."""
        pid = next(self._pids)
        message_id = message_id if message_id is not None else (msg.message_id if msg else None)
        sender = sender if sender is not None else (msg.sender if msg else "")
        lines = dovecot.lmtp_lines(rcpt, pid, session, message_id, plan, sender)
        alive = self._alive(qid)

        def push() -> None:
            if not alive():
                return
            for priority, text in lines:
                self.state.push("dovecot", dovecot.syslog_item(when, text, priority))
            self.deliveries.append(
                {
                    "message_id": message_id,
                    "recipient": rcpt,
                    "delivery": plan.outcome,
                    "mailbox": plan.mailbox,
                    "detail": plan.detail,
                    "time": int(when),
                }
            )

        self._at(when, push, msg)

    def _bounce_notice(self, when: float, msg: Message, qid: str) -> None:
        """Postfix returns a non-delivery notification to the sender of a mail a mailbox refused."""
        ndn = self._qid(self._dovecot_rng)  # its own generator: the mail traffic's draws stay as they were
        msg.queue_ids.append(ndn)
        ndn_id = f"{int(when)}.{ndn}@mail.example.org"
        self._log(when, "postfix/cleanup", f"{ndn}: message-id=<{ndn_id}>", owner=msg)
        self._log(when, "postfix/bounce", f"{qid}: sender non-delivery notification: {ndn}", owner=msg)
        self._queue_active(when, msg, ndn, 3200, 1, sender="")
        if msg.sender.split("@")[-1] in LOCAL_DOMAINS:
            self._deliver_ndn(when + 1, msg, ndn, ndn_id)
        else:
            self._log(
                when + 1,
                "postfix/smtp",
                f"{ndn}: to=<{msg.sender}>, relay=mx.{msg.sender.split('@')[-1]}[198.51.100.25]:25, "
                f"{self._delays(0.4)}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as "
                f"{self._dovecot_rng.getrandbits(40):X})",
                owner=msg,
            )
        self._removed(when + 1, msg, ndn)

    def _queue_active(
        self, when: float, msg: Message, qid: str, size: int, nrcpt: int, sender: str | None = None
    ) -> None:
        sender = msg.sender if sender is None else sender
        self._log(
            when,
            "postfix/qmgr",
            f"{qid}: from=<{sender}>, size={size}, nrcpt={nrcpt} (queue active)",
            owner=msg,
            qid=qid,
        )

    def _removed(self, when: float, msg: Message, qid: str) -> None:
        self._log(when, "postfix/qmgr", f"{qid}: removed", owner=msg, qid=qid)
        alive = self._alive(qid)
        self._at(when, lambda: self.state.queue.pop(qid, None) if alive() else None, msg)

    def _inbound(
        self,
        at: int,
        rcpts: list[Recipient],
        action: str = "no action",
        score: float | None = None,
        subject: str | None = None,
    ) -> Message:
        sender, host = self.rng.choice(EXTERNAL_SENDERS)
        ip = self._ip()
        spam = action in ("add header", "reject")
        subject = subject or (self.rng.choice(SPAM_SUBJECTS) if spam else self.rng.choice(SUBJECTS))
        msg = self._new_message("inbound", sender, at, rcpts, subject, with_message_id=self.rng.random() > 0.05)
        msg.rspamd_action = action
        for r in rcpts:
            r.spam = spam
        envelope = sorted({r.orig_to or r.address for r in rcpts})
        qid = self._smtp_in(at, msg, host, ip, len(envelope))
        size = self.rng.randrange(2_000, 400_000)
        if score is None:
            score = {
                "no action": round(self.rng.uniform(-5, 4), 2),
                "add header": round(self.rng.uniform(8, 14.9), 2),
                "reject": round(self.rng.uniform(15, 40), 2),
                "greylist": round(self.rng.uniform(7, 7.9), 2),
            }[action]
        self._rspamd_row(at + 2, msg, ip, "unknown", action, score, envelope, size)
        if action == "reject":
            self._log(
                at + 2,
                "postfix/cleanup",
                f"{qid}: milter-reject: END-OF-MESSAGE from {host}[{ip}]: "
                f"5.7.1 Spam message rejected; from=<{sender}> to=<{envelope[0]}> proto=ESMTP helo=<{host}>",
                owner=msg,
            )
            for r in rcpts:
                r.status = "rejected"
            self._at(at + 2, lambda: self._quarantine(at + 2, msg, qid, score, envelope[0], ip), msg)
            return msg
        self._queue_active(at + 2, msg, qid, size, len(rcpts))
        for r in rcpts:
            if r.address.split("@")[-1] in LOCAL_DOMAINS:
                self._deliver_local(at + 3, msg, qid, r, "Junk" if spam else "INBOX")
            else:
                self._relay(at + 3, msg, qid, r)
        self._removed(at + 3, msg, qid)
        return msg

    def _relay(self, when: float, msg: Message, qid: str, rcpt: Recipient) -> None:
        """A successful remote delivery (outbound mail or a forward)."""
        host, ip = next(
            ((h, i) for a, h, i in EXTERNAL_RECIPIENTS if a.split("@")[-1] == rcpt.address.split("@")[-1]),
            ("gmail-smtp-in.l.google.com", "142.251.173.26"),
        )
        orig = f"orig_to=<{rcpt.orig_to}>, " if rcpt.orig_to else ""
        self._log(
            when,
            "postfix/smtp",
            f"Trusted TLS connection established to {host}[{ip}]:25: TLSv1.3 with cipher "
            "TLS_AES_256_GCM_SHA384 (256/256 bits)",
            owner=msg,
            qid=qid,
        )
        self._log(
            when,
            "postfix/smtp",
            f"{qid}: to=<{rcpt.address}>, {orig}relay={host}[{ip}]:25, "
            f"{self._delays(when - msg.received_at + self.rng.uniform(0.2, 2))}, dsn=2.0.0, "
            f"status=sent (250 2.0.0 OK {int(when)} {self.rng.getrandbits(32):x} - gsmtp)",
            owner=msg,
            qid=qid,
        )

        alive = self._alive(qid)

        def done() -> None:
            if alive():
                rcpt.status = "delivered"

        self._at(when, done, msg)

    def _quarantine(self, at: int, msg: Message, qid: str, score: float, rcpt: str, ip: str) -> None:
        qitem_id = self.state.next_quarantine_id
        self.state.next_quarantine_id += 1
        self.state.quarantine[qitem_id] = {
            "id": qitem_id,
            "qid": qid,
            "subject": msg.subject,
            "virus_flag": 0,
            "score": score,
            "rcpt": rcpt,
            "sender": msg.sender or "empty-env-from@localhost",
            "action": "reject",
            "created": at,
            "notified": 0,
            "ip": ip,
            "message_id": msg.message_id,
            "message": msg,
        }

    # --- scenarios ----------------------------------------------------------------------

    def _local_rcpts(self, k: int) -> list[Recipient]:
        return [Recipient(a) for a, _ in self.rng.sample(MAILBOXES, k)]

    def _scenario_inbound(self, at: int) -> Message:
        return self._inbound(at, self._local_rcpts(self.rng.choice((1, 1, 1, 2, 3))))

    def _scenario_inbound_spam(self, at: int) -> Message:
        return self._inbound(at, self._local_rcpts(1), action="add header")

    def _scenario_inbound_reject_spam(self, at: int) -> Message:
        return self._inbound(at, self._local_rcpts(1), action="reject")

    def _scenario_inbound_alias(self, at: int) -> Message:
        alias = self.rng.choice(["contact@example.org", "team@example.org", "sales@example.net"])
        return self._inbound(at, [Recipient(t, orig_to=alias) for t in ALIASES[alias]])

    def _scenario_inbound_forward(self, at: int) -> Message:
        return self._inbound(at, [Recipient(ALIASES["fwd@example.org"][0], orig_to="fwd@example.org")])

    def _scenario_inbound_greylist(self, at: int) -> Message:
        """rspamd greylists the first attempt; the sender retries minutes later and it is delivered."""
        sender, host = self.rng.choice(EXTERNAL_SENDERS)
        ip = self._ip()
        rcpts = self._local_rcpts(1)
        msg = self._new_message("inbound", sender, at, rcpts, self.rng.choice(SUBJECTS))
        msg.rspamd_action = "no action"
        first = self._qid()
        msg.queue_ids.append(first)
        self._log(at, "postfix/smtpd", f"connect from {host}[{ip}]", owner=msg)
        self._log(at + 1, "postfix/smtpd", f"{first}: client={host}[{ip}]", owner=msg)
        self._log(at + 2, "postfix/cleanup", f"{first}: message-id=<{msg.message_id}>", owner=msg)
        self._rspamd_row(at + 2, msg, ip, "unknown", "greylist", 7.4, [rcpts[0].address], 4000)
        self._log(
            at + 2,
            "postfix/cleanup",
            f"{first}: milter-reject: END-OF-MESSAGE from {host}[{ip}]: 4.7.1 Try "
            f"again later; from=<{sender}> to=<{rcpts[0].address}> proto=ESMTP helo=<{host}>",
            owner=msg,
        )
        self._log(
            at + 3,
            "postfix/smtpd",
            f"disconnect from {host}[{ip}] ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5",
            owner=msg,
        )
        retry = at + self.rng.randrange(300, 1200)
        qid = self._smtp_in(retry, msg, host, ip, 1)
        self._rspamd_row(
            retry + 2, msg, ip, "unknown", "no action", round(self.rng.uniform(-3, 3), 2), [rcpts[0].address], 4000
        )
        self._queue_active(retry + 2, msg, qid, 4000, 1)
        self._deliver_local(retry + 3, msg, qid, rcpts[0])
        self._removed(retry + 3, msg, qid)
        return msg

    def _submission(self, at: int, direction: str, rcpts: list[Recipient]) -> tuple[Message, str, int]:
        sender = self.rng.choice(MAILBOXES)[0]
        msg = self._new_message(direction, sender, at, rcpts, self.rng.choice(SUBJECTS))
        msg.rspamd_action = "no action"
        client = self.rng.choice(("172.22.1.1", self._ip()))
        qid = self._qid()
        msg.queue_ids.append(qid)
        self._qid_owner[qid] = msg
        size = self.rng.randrange(1_000, 2_000_000)
        self._log(at, "postfix/submission/smtpd", f"connect from unknown[{client}]", owner=msg)
        self._log(
            at + 1,
            "postfix/submission/smtpd",
            f"{qid}: client=unknown[{client}], sasl_method=PLAIN, sasl_username={sender}",
            owner=msg,
        )
        self._log(at + 1, "postfix/cleanup", f"{qid}: message-id=<{msg.message_id}>", owner=msg)
        self._rspamd_row(
            at + 1,
            msg,
            client,
            sender,
            "no action",
            round(self.rng.uniform(-22, -15), 2),
            [r.address for r in rcpts],
            size,
        )
        self._queue_active(at + 2, msg, qid, size, len(rcpts))
        self._log(
            at + 2,
            "postfix/submission/smtpd",
            f"disconnect from unknown[{client}] ehlo=2 starttls=1 "
            f"auth=1 mail=1 rcpt={len(rcpts)} data=1 quit=1 commands={7 + len(rcpts)}",
            owner=msg,
        )
        return msg, qid, size

    def _scenario_outbound(self, at: int) -> Message:
        rcpts = [Recipient(a) for a, _, _ in self.rng.sample(EXTERNAL_RECIPIENTS[:4], self.rng.choice((1, 1, 2)))]
        msg, qid, _ = self._submission(at, "outbound", rcpts)
        for r in rcpts:
            self._relay(at + 3, msg, qid, r)
        self._removed(at + 3, msg, qid)
        return msg

    def _scenario_internal(self, at: int) -> Message:
        msg, qid, _ = self._submission(at, "internal", self._local_rcpts(self.rng.choice((1, 2))))
        for r in msg.recipients:
            self._deliver_local(at + 3, msg, qid, r)
        self._removed(at + 3, msg, qid)
        return msg

    def _scenario_outbound_deferred(self, at: int, deliver_after: int | None = None) -> Message:
        """Remote host unreachable: deferred, queued, retried, delivered hours later."""
        addr, host, ip = self.rng.choice(EXTERNAL_RECIPIENTS[:4])
        rcpt = Recipient(addr)
        msg, qid, size = self._submission(at, "outbound", [rcpt])
        reason = f"connect to {host}[{ip}]:25: Connection timed out"
        attempts = [at + 33]
        later = at + (deliver_after if deliver_after is not None else self.rng.randrange(1800, 4 * 3600))
        attempts += sorted(self.rng.randrange(at + 60, later) for _ in range(self.rng.randrange(0, 3)))
        for when in attempts:
            self._log(
                when,
                "postfix/smtp",
                f"{qid}: to=<{addr}>, relay=none, {self._delays(when - at)}, dsn=4.4.1, status=deferred ({reason})",
                owner=msg,
                qid=qid,
            )

        alive = self._alive(qid)

        def enqueue() -> None:
            if alive():
                rcpt.status = "deferred"
                self.state.queue[qid] = {
                    "queue_name": "deferred",
                    "queue_id": qid,
                    "arrival_time": at,
                    "message_size": size,
                    "forced_expire": False,
                    "sender": msg.sender,
                    "recipients": [f"{addr} ({reason})"],
                }

        self._at(at + 33, enqueue, msg)
        self._queue_active(later, msg, qid, size, 1)
        self._relay(later, msg, qid, rcpt)
        self._removed(later, msg, qid)
        return msg

    def _scenario_outbound_bounce(self, at: int) -> Message:
        """The remote rejects the recipient: bounced, with a non-delivery notification to the sender."""
        rcpt = Recipient("nobody@partner.example.com")
        msg, qid, _ = self._submission(at, "outbound", [rcpt])
        ndn = self._qid()
        msg.queue_ids.append(ndn)
        self._log(
            at + 3,
            "postfix/smtp",
            f"{qid}: to=<{rcpt.address}>, relay=mx.partner.example.com[198.51.100.7]:25, "
            f"{self._delays(0.4)}, dsn=5.1.1, status=bounced (host mx.partner.example.com[198.51.100.7] said: "
            f"550 5.1.1 <{rcpt.address}>: Recipient address rejected: User unknown (in reply to RCPT TO command))",
            owner=msg,
            qid=qid,
        )
        self._log(at + 3, "postfix/cleanup", f"{ndn}: message-id=<{at}.{ndn}@mail.example.org>", owner=msg)
        self._log(at + 3, "postfix/bounce", f"{qid}: sender non-delivery notification: {ndn}", owner=msg)
        self._queue_active(at + 3, msg, ndn, 3200, 1, sender="")
        self._deliver_ndn(at + 4, msg, ndn, f"{at}.{ndn}@mail.example.org")
        self._removed(at + 4, msg, qid)
        self._removed(at + 4, msg, ndn)

        def done() -> None:
            rcpt.status = "bounced"

        self._at(at + 3, done, msg)
        return msg

    def _deliver_ndn(self, when: float, msg: Message, ndn: str, ndn_id: str) -> None:
        """The notification lands in the local sender's INBOX (no Sieve rule acts on a bounce)."""
        # Dovecot's LMTP session ids are unique (Postfix's reply and Dovecot's line share one per recipient);
        # drawn from the notification's queue id, so the traffic's own draws are unchanged
        session = "".join(random.Random(ndn).choices(_SESSION_CHARS, k=22))
        self._log(
            when,
            "postfix/lmtp",
            f"{ndn}: to=<{msg.sender}>, relay={DOVECOT}, {self._delays(0.05)}, dsn=2.0.0, "
            f"status=sent (250 2.0.0 <{msg.sender}> {session} Saved)",
            owner=msg,
        )
        inbox = dovecot.DeliveryPlan("stored", "INBOX")
        self._dovecot_delivery(when, msg, msg.sender, session, inbox, message_id=ndn_id, sender="")

    def _noqueue(self, at: int, code: str, rcpt: str, reason: str, sender: str, host: str, ip: str) -> Message:
        msg = self._new_message("inbound", sender, at, [Recipient(rcpt, status="rejected")], "", False)
        self._log(at, "postfix/smtpd", f"connect from {host}[{ip}]", owner=msg)
        self._log(
            at + 1,
            "postfix/smtpd",
            f"NOQUEUE: reject: RCPT from {host}[{ip}]: {code} <{rcpt}>: {reason}; "
            f"from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{host if host != 'unknown' else 'localhost'}>",
            owner=msg,
        )
        self._log(
            at + 1,
            "postfix/smtpd",
            f"disconnect from {host}[{ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
            owner=msg,
        )
        return msg

    def _scenario_noqueue_unknown(self, at: int) -> Message:
        sender, host = self.rng.choice(EXTERNAL_SENDERS)
        rcpt = f"{self.rng.choice(('sales', 'hr', 'jobs', 'postmaster2'))}@{self.rng.choice(LOCAL_DOMAINS)}"
        return self._noqueue(
            at,
            "550 5.1.1",
            rcpt,
            "Recipient address rejected: User unknown in virtual mailbox table",
            sender,
            host,
            self._ip(),
        )

    def _scenario_noqueue_relay(self, at: int) -> Message:
        return self._noqueue(
            at,
            "454 4.7.1",
            f"victim{self.rng.randrange(99)}@elsewhere.example",
            "Relay access denied",
            "",
            "unknown",
            self._ip(),
        )

    def _scenario_postscreen_rbl(self, at: int) -> Message:
        ip = self._ip()
        port = self.rng.randrange(30000, 65000)
        rcpt = self.rng.choice(MAILBOXES)[0]
        msg = self._new_message(
            "inbound", "bulk@spam.example", at, [Recipient(rcpt, status="rejected", spam=True)], "", False
        )
        self._log(at, "postfix/postscreen", f"CONNECT from [{ip}]:{port} to [172.22.1.253]:25", owner=msg)
        self._log(at, "postfix/dnsblog", f"addr {ip} listed by domain zen.spamhaus.org as 127.0.0.4", owner=msg)
        self._log(at + 1, "postfix/postscreen", f"DNSBL rank 8 for [{ip}]:{port}", owner=msg)
        self._log(
            at + 2,
            "postfix/postscreen",
            f"NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service "
            f"unavailable; client [{ip}] blocked using zen.spamhaus.org; from=<bulk@spam.example>, to=<{rcpt}>, "
            "proto=ESMTP, helo=<spam.example>",
            owner=msg,
        )
        self._log(at + 2, "postfix/postscreen", f"DISCONNECT [{ip}]:{port}", owner=msg)
        return msg

    def _scenario_postscreen_pregreet(self, at: int) -> None:
        ip = self._ip()
        port = self.rng.randrange(30000, 65000)
        self._log(at, "postfix/postscreen", f"CONNECT from [{ip}]:{port} to [172.22.1.253]:25")
        self._log(at, "postfix/postscreen", f"PREGREET 14 after 0.27 from [{ip}]:{port}: EHLO ylmf-pc\\r\\n")
        self._log(at + 1, "postfix/postscreen", f"HANGUP after 0.55 from [{ip}]:{port} in tests after SMTP handshake")
        self._log(at + 1, "postfix/postscreen", f"DISCONNECT [{ip}]:{port}")

    def _scenario_sasl_failure(self, at: int) -> None:
        """A password-guessing client: SASL failures feed netfilter until the address is banned."""
        ip = self.rng.choice(("193.46.255.40", "92.118.38.52", "45.82.153.21", "80.94.95.115"))
        user = self.rng.choice(("admin@example.org", "info@example.org", "test@example.net"))
        self._log(at, "postfix/smtpd", f"connect from unknown[{ip}]")
        self._log(
            at + 1,
            "postfix/smtpd",
            f"warning: unknown[{ip}]: SASL LOGIN authentication failed: (reason unavailable), sasl_username={user}",
            priority="warning",
        )
        self._log(at + 1, "postfix/smtpd", f"lost connection after AUTH from unknown[{ip}]")
        self._log(at + 1, "postfix/smtpd", f"disconnect from unknown[{ip}] ehlo=1 auth=0/1 rset=1 commands=2/3")
        self._at(
            at + 1,
            lambda: self.netfilter_attempt(
                at + 1,
                ip,
                3,
                f"warning: unknown[{ip}]: SASL LOGIN authentication failed: (reason unavailable), sasl_username={user}",
            ),
        )

    def _scenario_container_restart(self, at: int) -> None:
        """The watchdog restarts an unhealthy container: restarting for a moment, then running again."""
        name = self.rng.choice(sorted(self.state.containers))
        service = name.removesuffix("-mailcow").replace("-", " ").title()

        def down() -> None:
            self.state.containers[name]["state"] = "restarting"
            self.state.push("watchdog", {"time": str(at), "message": f"{service} hit error limit"})
            self.state.push("watchdog", {"time": str(at), "message": f"Sending restart command to {name}..."})

        def up() -> None:
            self.state.containers[name].update(state="running", started_at=docker_time(at + 20))

        self._at(at, down)
        self._at(at + 20, up)

    def netfilter_attempt(
        self, at: int, ip: str, rule: int, line: str, max_attempts: int = 10, window: int = 600, ban_minutes: int = 30
    ) -> None:
        """netfilter's reaction to one matched line (mailcow-api.md §3.3): warn, count, maybe ban."""
        net = f"{ip}/128" if ":" in ip else f"{ip}/32"
        if net in self.state.active_bans:
            return
        self.state.push(
            "netfilter", {"time": at, "priority": "warn", "message": f"{ip} matched rule id {rule} ({line})"}
        )
        recent = [t for t in self.state.fail_counts.get(net, []) if t > at - window] + [at]
        self.state.fail_counts[net] = recent
        left = max_attempts - len(recent)
        if left > 0:
            self.state.push(
                "netfilter",
                {
                    "time": at,
                    "priority": "warn",
                    "message": f"{left} more attempts in the next {window} seconds until {net} is banned",
                },
            )
            return
        self.state.push(
            "netfilter", {"time": at, "priority": "crit", "message": f"Banning {net} for {ban_minutes} minutes"}
        )
        self.state.active_bans[net] = at + ban_minutes * 60
        self.state.fail_counts.pop(net, None)

        def unban() -> None:
            self.state.active_bans.pop(net, None)
            self.state.push(
                "netfilter", {"time": at + ban_minutes * 60, "priority": "info", "message": f"Unbanning {net}"}
            )

        self._at(at + ban_minutes * 60, unban)

    # --- actions from the API -------------------------------------------------------------

    def queue_action(self, action: str, qids: list[str]) -> list[str]:
        """Apply a postqueue/postsuper action; return the ids it touched."""
        with self.state.lock:
            if action in ("flush", "super_delete"):
                qids = list(self.state.queue)
            touched = [q for q in qids if q in self.state.queue]
            for qid in touched:
                item = self.state.queue[qid]
                owner = self._qid_owner.get(qid)
                if action in ("super_delete", "delete"):
                    self._cancel(qid)
                    del self.state.queue[qid]
                    self.state.push(
                        "postfix",
                        {
                            "time": str(self.now),
                            "program": "postfix/postsuper",
                            "priority": "info",
                            "message": f"{qid}: removed",
                        },
                    )
                    if owner:
                        for r in owner.recipients:
                            if r.status in ("pending", "deferred"):
                                r.status = "deleted"
                elif action == "hold":
                    item["queue_name"] = "hold"
                    self._cancel(qid)
                    self.state.push(
                        "postfix",
                        {
                            "time": str(self.now),
                            "program": "postfix/postsuper",
                            "priority": "info",
                            "message": f"{qid}: placed on hold",
                        },
                    )
                elif action == "unhold":
                    item["queue_name"] = "deferred"
                    self.state.push(
                        "postfix",
                        {
                            "time": str(self.now),
                            "program": "postfix/postsuper",
                            "priority": "info",
                            "message": f"{qid}: released from hold",
                        },
                    )
                    self._retry_now(qid, owner)
                elif action in ("deliver", "flush"):
                    self._retry_now(qid, owner)
            return touched

    def _retry_now(self, qid: str, owner: Message | None) -> None:
        """Deliver a queued message at the next tick; its earlier schedule no longer applies."""
        self._cancel(qid)
        if owner is None:
            self.state.queue.pop(qid, None)
            return
        self._queue_active(self.now + 1, owner, qid, self.state.queue[qid]["message_size"], 1)
        for r in owner.recipients:
            if r.status in ("pending", "deferred"):
                self._relay(self.now + 1, owner, qid, r)
        self._removed(self.now + 1, owner, qid)

    def quarantine_action(self, ident: int, action: str) -> None:
        """Release (re-inject via port 590 and deliver), learn as ham, or learn as spam (dropped)."""
        with self.state.lock:
            row = self.state.quarantine.pop(ident)
            if action == "learnspam":
                return
            message: Message = row["message"]
            at = int(self.clock())
            qid = self._qid()
            message.queue_ids.append(qid)
            for program, text in (
                ("postfix/quarantine/smtpd", f"{qid}: client=unknown[172.22.1.253]"),
                ("postfix/cleanup", f"{qid}: message-id=<{message.message_id or ''}>"),
                ("postfix/qmgr", f"{qid}: from=<{row['sender']}>, size=4096, nrcpt=1 (queue active)"),
                (
                    "postfix/lmtp",
                    f"{qid}: to=<{row['rcpt']}>, relay={DOVECOT}, delay=0.1, delays=0.05/0.01/0.01/0.03, "
                    f"dsn=2.0.0, status=sent (250 2.0.0 <{row['rcpt']}> RlsAvEdW2rJAAAAqAbqoQ Saved)",
                ),
                ("postfix/qmgr", f"{qid}: removed"),
            ):
                self.state.push("postfix", {"time": str(at), "program": program, "priority": "info", "message": text})
            stored = dovecot.DeliveryPlan("stored", "INBOX")
            for priority, text in dovecot.lmtp_lines(
                row["rcpt"], next(self._pids), "RlsAvEdW2rJAAAAqAbqoQ", message.message_id, stored, row["sender"]
            ):
                self.state.push("dovecot", dovecot.syslog_item(at, text, priority))
            self.deliveries.append(
                {
                    "message_id": message.message_id,
                    "recipient": row["rcpt"],
                    "delivery": "stored",
                    "mailbox": "INBOX",
                    "detail": None,
                    "time": at,
                }
            )
            for r in message.recipients:
                if row["rcpt"] in (r.address, r.orig_to):
                    r.status = "released"
                    r.delivery, r.mailbox = "stored", "INBOX"
