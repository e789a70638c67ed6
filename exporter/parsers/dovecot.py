"""Dovecot LMTP delivery lines (the `message` of mailcow's dovecot log item, mailcow-api.md §1.3) to outcomes. Pure.

Postfix only says "relay=dovecot ... Saved"; what the mailbox then did (which folder, a Sieve discard,
redirect or reject, a full quota) is in Dovecot's own log. One line becomes a `Delivery` so correlation
can match it to a message by Message-ID and recipient; any other line is None.

Formats (mailcow ships Dovecot 2.3.21 with Pigeonhole 0.5.21; the same strings are in 2.4), formats only:

Line prefix, `mail_log_prefix` default (dovecot/core src/lib-storage/mail-storage-settings.c):
    ``lmtp(<user>)<<pid>><<session>>: `` ; Dovecot 2.2 wrote ``lmtp(<pid>, <user>): <session>: `` and a
    process-level line has no user (``lmtp(113): Connect from ...``, not a delivery). An error or warning
    carries its level after the prefix (``Error: ``), as the reference sheet's dovecot lines show.
Delivery prefix, `deliver_log_format` default ``msgid=%m: %$`` (dovecot/core src/lib-lda/lda-settings.c);
    %m is the Message-ID header cut to 200 characters, or ``unspecified`` (src/lib-lda/mail-deliver.c).
    Pigeonhole adds ``sieve: `` before it (pigeonhole src/lib-sieve/sieve.c log prefix, the msgid part
    through src/plugins/lda-sieve/lda-sieve-plugin.c, which expands deliver_log_format), and after it
    ``<action> action: `` for an explicit action other than keep (src/lib-sieve/sieve-result.c,
    sieve_result_init_action_event): ``fileinto action: ``, ``redirect action: ``, ``discard action: ``.
Without Sieve (dovecot/core src/lib-lda/mail-deliver.c):
    ``saved mail to <mailbox>`` · ``save failed to <mailbox>: <error>`` ·
    ``save failed to open mailbox <mailbox>: <error>``
Sieve (pigeonhole):
    src/lib-sieve/sieve-actions.c: ``stored mail into mailbox '<name>'`` (keep and fileinto; `` (<vname>)``
        follows when the storage's name differs) · ``failed to store into mailbox '<name>': <error>``
        (a quota error is logged at info level, others as errors)
    src/lib-sieve/cmd-discard.c: ``Marked message to be discarded if not explicitly delivered (discard action)``
    src/lib-sieve/cmd-redirect.c: ``forwarded to <<address>>``
    src/lib-sieve/ext-reject.c: ``rejected message from <<sender>> (reject|ereject)``; the reason itself goes
        into the rejection, not the log, so detail is the logged sentence.
Failure texts (dovecot/core): src/plugins/quota/quota.c ``Quota exceeded (mailbox for user is full)``
    (the `quota_exceeded_message` default), src/lib-storage/mail-error.h ``Not enough disk quota`` and
    ``Mailbox doesn't exist: <name>``, src/lmtp/lmtp-local.c ``User doesn't exist: <user>`` and
    ``Temporary internal error`` (the latter two are SMTP replies, which Postfix logs; they count here only
    when a Dovecot line with a recipient carries them, e.g. after ``Error: ``).
Mailbox names stay as Dovecot logged them: spaces, quotes, modified UTF-7 (``Entw&APw-rfe``), ``?`` for
control characters and a ``...`` cut (str_sanitize) included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.parsers import MAX_FIELD

# lmtp(user@domain)<pid><session>: / lmtp(user@domain): / lmtp(pid, user@domain): [session: ]
_PREFIX = re.compile(
    r"^lmtp\((?:\d+, )?(?P<user>[^()\s]+)\)"
    r"(?:<\d+><(?P<session>[^<>\s]*)>)?: "
    r"(?:(?P<old_session>[A-Za-z0-9+/]{16,}(?::[A-Za-z0-9+/:]+)?): )?"
    r"(?:(?:Error|Warning|Info): )?",
)
_SIEVE = "sieve: "
_MSGID = re.compile(r"msgid=(?P<msgid><[^<>]*>|\S*?): (?:(?:fileinto|redirect|e?reject|discard) action: )?")

_STORED = re.compile(r"stored mail into mailbox '(?P<name>.*)'(?: \((?P<vname>[^()]*)\))?$", re.S)
_STORE_FAILED = re.compile(
    r"failed to store into mailbox '(?P<name>.*?)'(?: \((?P<vname>[^()]*)\))?: (?P<reason>.*)$", re.S
)
_SAVED = re.compile(r"saved mail to (?P<name>.*)$", re.S)
_SAVE_FAILED = re.compile(r"save failed to (?:open mailbox )?(?P<name>.*?): (?P<reason>.*)$", re.S)
_DISCARDED = "Marked message to be discarded if not explicitly delivered (discard action)"
_FORWARDED = re.compile(r"forwarded to <(?P<target>[^<>]*)>$")
_REJECTED = re.compile(r"rejected message from <[^<>]*> \((?:e?reject)\)$")
_LDA_REJECTED = re.compile(r"rejected: (?P<reason>.*)$", re.S)  # dovecot/core src/lda/main.c

# A failure Dovecot names without a delivery sentence (a line with a recipient, usually after "Error: ").
_FAILURE_TEXT = re.compile(
    r"Quota exceeded|over quota|Not enough disk quota|Mailbox doesn't exist|User doesn't exist"
    r"|Temporary internal error|Failed to lookup user|Failed to initialize user",
    re.I,
)


# Every outcome a Delivery can have: what the mailbox did, from most to least telling about where the mail went.
OUTCOMES = ("stored", "redirected", "rejected", "discarded", "failed")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the mailbox did with one message for one recipient.

    outcome: stored | discarded | redirected | rejected | failed. mailbox is the folder for stored (and the
    folder a failed store aimed at); detail is the redirect target, the reject sentence or the failure reason.
    message_id is without angle brackets, None for ``msgid=unspecified`` or a line without one.
    """

    recipient: str
    session_id: str | None
    message_id: str | None
    outcome: str
    mailbox: str | None = None
    detail: str | None = None


def _cap(value: str | None) -> str | None:
    """Cut to MAX_FIELD: the store indexes these fields; empty text is no value."""
    if not value:
        return None
    return value[:MAX_FIELD]


def _message_id(raw: str | None) -> str | None:
    """The Message-ID without its angle brackets; Dovecot's ``unspecified`` means the header was missing."""
    if raw is None or raw in ("", "unspecified", "<>"):
        return None
    if raw.startswith("<"):
        raw = raw[1:]
    if raw.endswith(">"):
        raw = raw[:-1]
    return raw or None


def _action(text: str) -> tuple[str, str | None, str | None] | None:
    """The delivery sentence after ``msgid=...: `` as (outcome, mailbox, detail); None if it is none."""
    match = _STORED.match(text)
    if match:
        return "stored", match.group("vname") or match.group("name"), None
    match = _SAVED.match(text)
    if match:
        return "stored", match.group("name"), None
    if text.startswith(_DISCARDED):
        return "discarded", None, None
    match = _FORWARDED.match(text)
    if match:
        return "redirected", None, match.group("target")
    if _REJECTED.match(text):
        return "rejected", None, text
    match = _STORE_FAILED.match(text) or _SAVE_FAILED.match(text)
    if match:
        groups = match.groupdict()
        return "failed", groups.get("vname") or match.group("name"), match.group("reason")
    match = _LDA_REJECTED.match(text)
    if match:
        return "failed", None, match.group("reason")
    return None


def parse(message: str) -> Delivery | None:
    """One Dovecot log message to a Delivery, or None when it is not an LMTP delivery outcome."""
    if not isinstance(message, str) or not message.startswith("lmtp("):
        return None
    prefix = _PREFIX.match(message)
    if prefix is None or "@" not in prefix.group("user"):
        return None
    rest = message[prefix.end() :]
    if rest.startswith(_SIEVE):
        rest = rest[len(_SIEVE) :]
    msgid = _MSGID.match(rest)
    text = rest[msgid.end() :] if msgid else rest
    action = _action(text) if msgid else None
    if action is None:
        if not _FAILURE_TEXT.search(text):
            return None
        action = ("failed", None, text)
    outcome, mailbox, detail = action
    return Delivery(
        recipient=prefix.group("user")[:MAX_FIELD],
        session_id=_cap(prefix.group("session") or prefix.group("old_session")),
        message_id=_cap(_message_id(msgid.group("msgid") if msgid else None)),
        outcome=outcome,
        mailbox=_cap(mailbox),
        detail=_cap(detail),
    )
