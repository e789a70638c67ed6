"""Postfix log messages (mailcow-api.md §3.1) to typed events. Pure: no I/O, never raises."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from exporter.parsers import MAX_FIELD

# Short ids are upper-case hex; long ids (enable_long_queue_ids) use a 52-character alphabet with a 'z'.
_QID = r"(?:[0-9A-F]{6,12}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{10,16}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{3,16})"
_HOST_IP = r"(?P<host>[^\s\[\]]*)\[(?P<ip>[0-9A-Fa-f.:]+|[^\]]*)\]"

_QUEUE_PREFIX = re.compile(rf"^(?P<qid>{_QID}): (?P<rest>.*)$", re.S)
_CLIENT = re.compile(rf"^client={_HOST_IP}(?::\d+)?(?P<tail>.*)$")
_SASL_METHOD = re.compile(r"sasl_method=([^,\s]+)")
_SASL_USER = re.compile(r"sasl_username=([^,\s]+)")
_ORIG_QID = re.compile(r"orig_queue_id=([0-9A-Za-z]+)")
_MESSAGE_ID = re.compile(r"^(?:resent-)?message-id=<?(?P<mid>[^>]*)>?\s*$")
_PICKUP = re.compile(r"^uid=(?P<uid>\d+) from=<(?P<sender>[^>]*)>")
_QMGR_FROM = re.compile(r"^from=<(?P<sender>[^>]*)>, size=(?P<size>\d+), nrcpt=(?P<nrcpt>\d+)")
_EXPIRED = re.compile(r"^from=<(?P<sender>[^>]*)>, status=expired")
_DELIVERY = re.compile(
    r"^to=<(?P<rcpt>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?relay=(?P<relay>[^,]+), "
    r"(?:conn_use=\d+, )?delay=(?P<delay>[0-9.]+), delays=(?P<delays>[0-9./]+), dsn=(?P<dsn>[0-9.]+), "
    r"status=(?P<status>\w+)(?: \((?P<reply>.*)\))?\s*$",
    re.S,
)
_NDN = re.compile(r"^(?:sender|postmaster) (?:non-delivery|delivery status|delay) notification: (?P<ndn>\w+)$")
_MILTER = re.compile(
    rf"^milter-(?P<action>reject|discard|hold): (?P<stage>[A-Z-]+) from {_HOST_IP}: (?P<text>.*?)"
    r"(?:; from=<(?P<sender>[^>]*)>)?(?: to=<(?P<rcpt>[^>]*)>)?(?: proto=\S+)?(?: helo=<(?P<helo>[^>]*)>)?$",
    re.S,
)
# smtpd: "...: reason; from=<a> to=<b> proto=ESMTP helo=<h>"; postscreen: same with commas.
_REJECT = re.compile(
    r"^reject: (?P<stage>[A-Z]+) from (?:(?P<host>[^\s\[\]]*)\[(?P<ip>[^\]]*)\](?::\d+)?): "
    r"(?P<code>\d{3})(?: (?P<dsn>\d\.\d{1,3}\.\d{1,3}))? (?P<text>.*?)"
    r"; from=<(?P<sender>[^>]*)>,? to=<(?P<rcpt>[^>]*)>,?(?: proto=[^,\s]+,?)?(?: helo=<(?P<helo>[^>]*)>)?\s*$",
    re.S,
)
_ENVELOPE_TAIL = re.compile(r"; from=<(?P<sender>[^>]*)>,? to=<(?P<rcpt>[^>]*)>")
_REMOTE_REPLY = re.compile(rf"^host {_HOST_IP} said: (?P<reply>.*)$", re.S)
_CONNECT = re.compile(rf"^connect from {_HOST_IP}")
_DISCONNECT = re.compile(rf"^disconnect from {_HOST_IP}")
_LOST = re.compile(rf"^lost connection after (?P<stage>\S+) from {_HOST_IP}")
_SASL_FAIL = re.compile(
    rf"^warning: {_HOST_IP}: SASL (?P<method>\S+) authentication failed: (?P<reason>.*?)"
    r"(?:, sasl_username=(?P<user>\S+))?$"
)
_PS_CONNECT = re.compile(r"^CONNECT from \[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
_PS_PASS = re.compile(r"^PASS (?P<how>NEW|OLD) \[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
_PS_PREGREET = re.compile(r"^PREGREET \d+ after [0-9.]+ from \[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
_PS_DNSBL = re.compile(r"^DNSBL rank (?P<rank>\d+) for \[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
_PS_HANGUP = re.compile(r"^HANGUP after [0-9.]+ from \[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
_PS_DISCONNECT = re.compile(r"^DISCONNECT \[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
_DNSBL_LISTED = re.compile(r"^addr (?P<ip>\S+) listed by domain (?P<domain>\S+) as")
_HOLD = re.compile(r"^(?P<what>placed on hold|released from hold|requeued)$")

# Delivery status words (Postfix `status=`) to recipient status.
DELIVERY_STATUS = {
    "sent": "delivered",
    "deferred": "deferred",
    "bounced": "bounced",
    "expired": "expired",
    "undeliverable": "bounced",
    "deliverable": "delivered",
}


@dataclass(slots=True)  # not frozen: a frozen __init__ costs more than parsing a line
class PostfixEvent:
    """What one Postfix log message says; `kind` names the line type, other fields may be None."""

    kind: str
    queue_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    orig_to: str | None = None
    status: str | None = None
    dsn: str | None = None
    relay: str | None = None
    delay: float | None = None
    delays: str | None = None
    reply: str | None = None
    size: int | None = None
    nrcpt: int | None = None
    message_id: str | None = None
    client_host: str | None = None
    client_ip: str | None = None
    sasl_method: str | None = None
    sasl_username: str | None = None
    reject_code: str | None = None
    reject_class: str | None = None
    helo: str | None = None
    related_queue_id: str | None = None


EVENT_FIELDS = tuple(f.name for f in fields(PostfixEvent))
# the fields the store indexes, cut to MAX_FIELD
CAPPED_FIELDS = ("sender", "recipient", "orig_to", "message_id", "client_host", "client_ip", "sasl_username", "helo")


def reject_class(text: str, code: str | None = None) -> str:
    """Bucket a rejection reason into a small, bounded set of classes (for filters and metrics)."""
    lowered = text.lower()
    if "relay access denied" in lowered:
        return "relay_denied"
    if "blocked using" in lowered:
        return "rbl"
    if any(marker in lowered for marker in ("user unknown", "unknown user", "user doesn't exist")):
        return "unknown_recipient"
    if "sender address rejected" in lowered:
        return "sender_rejected"
    if "try again later" in lowered or "greylist" in lowered:
        return "greylist"
    if "spam" in lowered:
        return "spam"
    if "protocol error" in lowered:
        return "protocol"
    if "client host rejected" in lowered or "helo command rejected" in lowered:
        return "client_rejected"
    return "other"


def _ip(value: str | None) -> str | None:
    return value if value and value != "unknown" else None


def parse(program: str, message: str) -> PostfixEvent:
    """Classify one Postfix message; unknown text becomes kind 'other', never an exception."""
    event = _classify(program, message)
    if len(message) > MAX_FIELD:  # only a long message can carry an over-long field: normal lines pay nothing
        for name in CAPPED_FIELDS:
            value = getattr(event, name)
            if value is not None and len(value) > MAX_FIELD:
                setattr(event, name, value[:MAX_FIELD])
    return event


def _classify(program: str, message: str) -> PostfixEvent:
    queued = _QUEUE_PREFIX.match(message)
    if queued:
        return _parse_queued(program, queued.group("qid"), queued.group("rest"))
    if message.startswith("NOQUEUE: "):
        return _parse_reject(program, None, message[len("NOQUEUE: ") :], "noqueue_reject")
    if program.endswith("postscreen"):
        return _parse_postscreen(message)
    if program.endswith("dnsblog"):
        match = _DNSBL_LISTED.match(message)
        if match:
            return PostfixEvent("dnsbl_listed", client_ip=match.group("ip"), reply=match.group("domain"))
        return PostfixEvent("other")
    for pattern, kind in ((_CONNECT, "connect"), (_DISCONNECT, "disconnect"), (_LOST, "lost_connection")):
        match = pattern.match(message)
        if match:
            return PostfixEvent(kind, client_host=match.group("host"), client_ip=_ip(match.group("ip")))
    match = _SASL_FAIL.match(message)
    if match:
        return PostfixEvent(
            "sasl_failure",
            client_host=match.group("host"),
            client_ip=_ip(match.group("ip")),
            sasl_method=match.group("method"),
            sasl_username=match.group("user"),
            reply=match.group("reason"),
        )
    if message.startswith(("warning:", "fatal:", "error:", "panic:")):
        return PostfixEvent("warning", reply=message)
    return PostfixEvent("other")


def _parse_queued(program: str, qid: str, rest: str) -> PostfixEvent:
    if rest.startswith("to="):
        match = _DELIVERY.match(rest)
        if match:
            return PostfixEvent(
                "delivery",
                queue_id=qid,
                recipient=match.group("rcpt"),
                orig_to=match.group("orig"),
                status=DELIVERY_STATUS.get(match.group("status"), match.group("status")),
                dsn=match.group("dsn"),
                relay=match.group("relay"),
                delay=float(match.group("delay")),
                delays=match.group("delays"),
                reply=match.group("reply"),
            )
        return PostfixEvent("queue_other", queue_id=qid)
    if rest.startswith("client="):
        match = _CLIENT.match(rest)
        if match:
            tail = match.group("tail")
            method, user, orig = _SASL_METHOD.search(tail), _SASL_USER.search(tail), _ORIG_QID.search(tail)
            return PostfixEvent(
                "client",
                queue_id=qid,
                client_host=match.group("host"),
                client_ip=_ip(match.group("ip")),
                sasl_method=method.group(1) if method else None,
                sasl_username=user.group(1) if user else None,
                related_queue_id=orig.group(1) if orig else None,
            )
    if rest.startswith(("message-id=", "resent-message-id=")):
        match = _MESSAGE_ID.match(rest)
        if match and rest.startswith("message-id="):
            return PostfixEvent("message_id", queue_id=qid, message_id=match.group("mid") or None)
        return PostfixEvent("queue_other", queue_id=qid)
    if rest.startswith("from="):
        match = _QMGR_FROM.match(rest)
        if match:
            return PostfixEvent(
                "queued",
                queue_id=qid,
                sender=match.group("sender"),
                size=int(match.group("size")),
                nrcpt=int(match.group("nrcpt")),
            )
        match = _EXPIRED.match(rest)
        if match:
            return PostfixEvent("expired", queue_id=qid, sender=match.group("sender"))
    if rest == "removed":
        return PostfixEvent("deleted" if program.endswith("postsuper") else "removed", queue_id=qid)
    match = _PICKUP.match(rest)
    if match:
        return PostfixEvent("pickup", queue_id=qid, sender=match.group("sender"))
    match = _NDN.match(rest)
    if match:
        return PostfixEvent("bounce_notification", queue_id=qid, related_queue_id=match.group("ndn"))
    if rest.startswith("milter-"):
        match = _MILTER.match(rest)
        if match:
            text = match.group("text")
            dsn = text.split(" ", 1)[0] if re.match(r"\d\.\d", text) else None
            return PostfixEvent(
                f"milter_{match.group('action')}",
                queue_id=qid,
                sender=match.group("sender"),
                recipient=match.group("rcpt"),
                client_host=match.group("host"),
                client_ip=_ip(match.group("ip")),
                dsn=dsn,
                reply=text,
                helo=match.group("helo"),
                reject_class=reject_class(text),
            )
    if rest.startswith("reject: "):
        return _parse_reject(program, qid, rest, "rcpt_reject")
    if rest.startswith("discard: "):
        match = _ENVELOPE_TAIL.search(rest)
        return PostfixEvent(
            "discard",
            queue_id=qid,
            reply=rest[len("discard: ") :].split("; from=<", 1)[0],
            sender=match.group("sender") if match else None,
            recipient=match.group("rcpt") if match else None,
        )
    match = _HOLD.match(rest)
    if match:
        return PostfixEvent(
            {"placed on hold": "hold", "released from hold": "unhold"}.get(match.group("what"), "requeued"),
            queue_id=qid,
        )
    match = _REMOTE_REPLY.match(rest)
    if match:
        return PostfixEvent(
            "remote_reply",
            queue_id=qid,
            relay=f"{match.group('host')}[{match.group('ip')}]",
            reply=match.group("reply"),
        )
    return PostfixEvent("queue_other", queue_id=qid)


def _parse_reject(program: str, qid: str | None, rest: str, kind: str) -> PostfixEvent:
    match = _REJECT.match(rest)
    if not match:
        return PostfixEvent("queue_other" if qid else "other", queue_id=qid)
    text = match.group("text")
    cls = reject_class(text)
    if program.endswith("postscreen") and cls == "other":
        cls = "rbl" if "blocked" in text else "other"
    return PostfixEvent(
        kind,
        queue_id=qid,
        sender=match.group("sender"),
        recipient=match.group("rcpt"),
        client_host=match.group("host") or None,
        client_ip=_ip(match.group("ip")),
        reject_code=match.group("code"),
        dsn=match.group("dsn"),
        reply=text,
        helo=match.group("helo"),
        reject_class=cls,
    )


def _parse_postscreen(message: str) -> PostfixEvent:
    for pattern, kind in (
        (_PS_CONNECT, "postscreen_connect"),
        (_PS_PASS, "postscreen_pass"),
        (_PS_PREGREET, "postscreen_pregreet"),
        (_PS_DNSBL, "postscreen_dnsbl"),
        (_PS_HANGUP, "postscreen_hangup"),
        (_PS_DISCONNECT, "postscreen_disconnect"),
    ):
        match = pattern.match(message)
        if match:
            return PostfixEvent(
                kind,
                client_ip=match.group("ip"),
                reject_class="pregreet" if kind == "postscreen_pregreet" else None,
                reply=message if kind == "postscreen_pregreet" else None,
            )
    return PostfixEvent("other")
