"""What Dovecot's LMTP and Sieve do with a mail Postfix hands over, as the lines mailcow's dovecot list holds.

Postfix only logs "relay=dovecot ... Saved"; the mailbox's own decision (INBOX, Junk or another folder, a
Sieve discard, redirect or reject, a full quota) is in Dovecot's log. The formats are the ones
`exporter/parsers/dovecot.py` documents (Dovecot 2.3.21 with Pigeonhole 0.5.21, as mailcow ships them):
``lmtp(<rcpt>)<<pid>><<session>>: sieve: msgid=<<id>>: [<action> action: ]<sentence>``. Which outcome a
recipient gets is drawn from the simulation's own seeded generator, so the same seed gives the same mailboxes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

POSTFIX_IP = "172.22.1.253"  # postfix-mailcow, the LMTP client
QUOTA_ERROR = "Quota exceeded (mailbox for user is full)"  # src/plugins/quota/quota.c default
DISCARD_TEXT = "Marked message to be discarded if not explicitly delivered (discard action)"
# folders users' Sieve rules file mail into (modified UTF-7 as Dovecot logs it: "Entwürfe")
FOLDERS = ("Archive", "Newsletters", "Lists/dev", "Receipts", "Entw&APw-rfe")
REDIRECT_TARGETS = ("alice.private@gmail.com", "ops-oncall@partner.example.com", "carol@example.net")
# share per outcome of a ham mail; spam is filed into Junk by mailcow's global Sieve script
_HAM_OUTCOMES = (
    ("inbox", 84),
    ("fileinto", 6),
    ("discard", 2.5),
    ("redirect", 2.5),
    ("reject", 1.5),
    ("quota", 3.5),
)


@dataclass(frozen=True)
class DeliveryPlan:
    """What the mailbox does with one mail for one recipient (ground truth).

    outcome: stored | discarded | redirected | rejected | failed; mailbox: the folder stored into (or the
    one a failed store aimed at); detail: the redirect target or the failure reason.
    """

    outcome: str
    mailbox: str | None = None
    detail: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether LMTP answers 250 (everything but a failed store, which Postfix sees as a bounce)."""
        return self.outcome != "failed"


def choose(rng: random.Random, spam: bool) -> DeliveryPlan:
    """A seeded, deterministic share of every outcome: mostly INBOX, spam into Junk."""
    kind = rng.choices([k for k, _ in _HAM_OUTCOMES], [w for _, w in _HAM_OUTCOMES])[0]
    if kind == "quota":
        return DeliveryPlan("failed", "INBOX", QUOTA_ERROR)
    if spam:
        return DeliveryPlan("stored", "Junk")
    if kind == "fileinto":
        return DeliveryPlan("stored", rng.choice(FOLDERS))
    if kind == "discard":
        return DeliveryPlan("discarded")
    if kind == "redirect":
        return DeliveryPlan("redirected", detail=rng.choice(REDIRECT_TARGETS))
    if kind == "reject":
        return DeliveryPlan("rejected")
    return DeliveryPlan("stored", "INBOX")


def delivery_sentence(plan: DeliveryPlan, sender: str) -> str:
    """Pigeonhole's text after ``msgid=<...>: `` for the plan (an explicit action names itself first)."""
    if plan.outcome == "stored" and plan.mailbox == "INBOX":
        return "stored mail into mailbox 'INBOX'"  # the implicit keep
    if plan.outcome == "stored":
        return f"fileinto action: stored mail into mailbox '{plan.mailbox}'"
    if plan.outcome == "discarded":
        return f"discard action: {DISCARD_TEXT}"
    if plan.outcome == "redirected":
        return f"redirect action: forwarded to <{plan.detail}>"
    if plan.outcome == "rejected":
        return f"reject action: rejected message from <{sender}> (reject)"
    return f"failed to store into mailbox '{plan.mailbox}': {plan.detail}"


def lmtp_lines(
    rcpt: str, pid: int, session: str, message_id: str | None, plan: DeliveryPlan, sender: str
) -> list[tuple[str, str]]:
    """(priority, message) of one LMTP delivery in log order: connect, the Sieve outcome, disconnect."""
    msgid = f"<{message_id}>" if message_id else "unspecified"
    return [
        ("info", f"lmtp({pid}): Connect from {POSTFIX_IP}"),
        ("info", f"lmtp({rcpt})<{pid}><{session}>: sieve: msgid={msgid}: {delivery_sentence(plan, sender)}"),
        ("info", f"lmtp({pid}): Disconnect from {POSTFIX_IP}: Client has quit the connection (state=READY)"),
    ]


def syslog_item(when: float, message: str, priority: str = "info", program: str = "dovecot") -> dict[str, Any]:
    """An item of the syslog-ng lists (postfix, dovecot, sogo): four strings, in mailcow's key order."""
    return {"time": str(int(when)), "program": program, "priority": priority, "message": message}
