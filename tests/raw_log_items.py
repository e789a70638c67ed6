"""Real items of all ten mailcow log lists (mailcow-api.md §1 shapes, §3 lines) and a loader that
stores them the way the ingestion does (exporter/services/raw_logs.py)."""

from __future__ import annotations

import time
from typing import Any

from exporter.parsers.lines import number_window
from exporter.services import raw_logs as raw_service


def syslog(program: str, message: str, priority: str = "info") -> dict[str, Any]:
    """A postfix/dovecot/sogo item: four strings, `time` filled in by `timed`."""
    return {"time": "0", "program": program, "priority": priority, "message": message}


PF = "postfix/smtpd"
POSTFIX = {
    "connect_ps": syslog("postfix/postscreen", "CONNECT from [213.79.118.83]:56283 to [172.22.1.11]:25"),
    "dnsblog": syslog("postfix/dnsblog", "addr 213.79.118.83 listed by domain zen.spamhaus.org as 127.0.0.4"),
    "pass_new": syslog("postfix/postscreen", "PASS NEW [213.79.118.83]:56283"),
    "connect": syslog(PF, "connect from unknown[86.47.96.237]"),
    "pregreet": syslog("postfix/postscreen", "PREGREET 14 after 0.27 from [103.114.106.144]:55309: EHLO ylmf-pc\\r\\n"),
    "hangup": syslog(
        "postfix/postscreen",
        "HANGUP after 0.55 from [103.114.106.144]:55309 in tests after SMTP handshake",
    ),
    "relay": syslog(
        PF,
        "NOQUEUE: reject: RCPT from unknown[62.149.156.25]: 454 4.7.1 <bounce+c5e8a8.afb32-lorenzo.longhi=ordingbo.it"
        "@mail.ourmx.it>: Relay access denied; from=<> to=<bounce+c5e8a8.afb32-lorenzo.longhi=ordingbo.it"
        "@mail.ourmx.it> proto=ESMTP helo=<smtpcmd15.ad.aruba.it>",
    ),
    "client_rejected": syslog(
        PF,
        "NOQUEUE: reject: RCPT from mx01.kthx.at[212.129.56.246]: 554 5.7.1 <mx01.kthx.at[212.129.56.246]>: Client "
        "host rejected: Access denied; from=<****@kthx.at> to=<*****@neuland.tech> proto=ESMTP helo=<mx01.kthx.at>",
    ),
    "sender_rejected": syslog(
        "postfix/submission/smtpd",
        "NOQUEUE: reject: RCPT from domain.com[someip]: 553 5.7.1 <user1@domain.com>: Sender address rejected: not "
        "owned by user user2@domain.com; from=<user1@domain.com> to=<user@somemailhost.com> proto=ESMTP "
        "helo=<www.domain.com>",
    ),
    "queued_reject": syslog(
        "postfix/sogo/smtpd",
        "9CDA85A0673: reject: RCPT from mailcowdockerized_sogo-mailcow_1.mailcowdockerized_mailcow-network"
        "[172.22.1.248]: 550 5.1.1 <papageienzimmer@example.org>: Recipient address rejected: User unknown in virtual "
        "mailbox table; from=<me@example.org> to=<papageienzimmer@example.org> proto=ESMTP helo=<578944bce8f6>",
    ),
    "sasl_failed": syslog(
        PF,
        "warning: unknown[193.46.255.40]: SASL LOGIN authentication failed: (reason unavailable), "
        "sasl_username=ncc@co.za",
        "warning",
    ),
    "qmgr": syslog("postfix/qmgr", "11C9513477F0: from=<sender@domain.com>, size=3720952, nrcpt=77 (queue active)"),
}
DOVECOT = {
    "login": syslog(
        "dovecot",
        "imap-login: Login: user=<o@mail.mail>, method=PLAIN, rip=172.22.1.248, lip=172.22.1.250, mpid=353632",
    ),
    "aborted": syslog(
        "dovecot",
        "imap-login: Aborted login (no auth attempts in 0 secs): user=<>, rip=172.22.1.6, lip=172.22.1.8, TLS, "
        "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
    ),
    "auth_failed": syslog(
        "dovecot",
        "imap-login: Login aborted: Connection closed (auth failed, 1 attempts in 2 secs) (auth_failed): "
        "user=<bob@example.org>, method=PLAIN, rip=203.0.113.9, lip=172.22.1.250, TLS, session=<q3YhR0wVvN7LwKgB>",
    ),
    "sieve_stored": syslog(
        "dovecot",
        "lmtp(bob@example.org)<28231><CUeLOy0xv1xHbgAASDkM0A>: sieve: msgid=<CAF3nQ1xYz@mail.example.com>: stored "
        "mail into mailbox 'INBOX'",
    ),
    "lmtp_connect": syslog("dovecot", "lmtp(113): Connect from 172.22.1.6"),
    # Dovecot's quota plugin default text (quota_exceeded_message), as LMTP logs a failed save
    "quota": syslog(
        "dovecot",
        "lmtp(bob@example.org)<28232><DUeLOy0xv1xHbgAASDkM0A>: msgid=<a1@example.com>: save failed to INBOX: "
        "Quota exceeded (mailbox for user is full)",
    ),
    "expunge": syslog(
        "dovecot",
        "imap(me@domain.de)<147><Ic7pPuqD+tW5dxAp>:  expunge: box=INBOX, uid=2934,  "
        "msgid=<5891404cc121aa85d2cea7508a9ac6e9@tempr.email>, size=2514",
    ),
    "fatal": syslog(
        "dovecot",
        "auth: Fatal: passdb-lua: initialization failed: lua_load(/var/lib/dovecot/app-passdb.lua) failed: error "
        "loading file",
        "crit",
    ),
}
SOGO = {
    "login_ok": syslog(
        "sogod",
        "[81]: SOGoRootPage successful login from '77.23.xxx.xxx' for user 'here-is-my@email.de' - expire = -1  "
        "grace = -1",
        "notice",
    ),
    "login_failed": syslog(
        "sogod",
        "[2092]: SOGoRootPage Login from '188.117.155.136' for user 'user@domain.de' might not have worked - password "
        "policy: 65535  grace: -1  expire: -1  bound: 0",
        "notice",
    ),
    "request": syslog(
        "sogod",
        '[109]: mailcowdockerized_watchdog-mailcow_1.mailcowdockerized_mailcow-network "GET /SOGo.index/ HTTP/1.1" '
        "200 2531/0 0.005 - - 0",
        "notice",
    ),
}
NETFILTER = {
    "ban": {"time": 0, "priority": "crit", "message": "Banning 193.46.255.40/32 for 30 minutes"},
    "unban": {"time": 0, "priority": "info", "message": "Unbanning 193.46.255.40/32"},
    "not_banned": {
        "time": 0,
        "priority": "info",
        "message": "193.46.255.40/32 is not banned, skipping unban and deleting from queue (if any)",
    },
    "matched": {
        "time": 0,
        "priority": "warn",
        "message": "193.46.255.40 matched rule id 3 (warning: unknown[193.46.255.40]: SASL LOGIN authentication "
        "failed: (reason unavailable), sasl_username=ncc@co.za)",
    },
}
RATELIMITED = {
    "held": {
        "time": 0,
        "rcpt": "hello@example.net, second@example.net",
        "from": "awesome@example.org",
        "user": "awesome@example.org",
        "rl_info": "mailcow(RLsdz3tuabozgd4oacbdh8kc78)",
        "rl_name": "mailcow",
        "rl_hash": "RLsdz3tuabozgd4oacbdh8kc78",
        "qid": "E3CF91500458",
        "ip": "172.22.1.248",
        "message_id": "6a-5d892500-7-240abd80@90879116",
        "header_subject": "Mailcow is amazing",
        "header_from": '"Awesome" <awesome@example.org>',
    },
}


def _rspamd(action: str, score: float, subject: str) -> dict[str, Any]:
    return {
        "is_skipped": False,
        "score": score,
        "required_score": 15,
        "action": action,
        "thresholds": {"reject": 15, "add header": 8, "greylist": 7},
        "symbols": {"BAYES_HAM": {"name": "BAYES_HAM", "score": -1.8, "metric_score": -3}},
        "message-id": "CAF3nQ1xYz@mail.example.com",
        "time_real": 0.489551,
        "sender_smtp": "alice@example.com",
        "sender_mime": "alice@example.com",
        "rcpt_smtp": ["bob@example.org"],
        "rcpt_mime": ["bob@example.org"],
        "user": "unknown",
        "unix_time": 0,
        "subject": subject,
        "size": 5432,
        "ip": "198.51.100.25",
    }


RSPAMD = {
    "clean": _rspamd("no action", -2.7, "Re: meeting tomorrow"),
    "greylist": _rspamd("greylist", 7.5, "Cheap pills"),
    "add_header": _rspamd("add header", 9.1, "You won"),
    "reject": _rspamd("reject", 21.0, "Invoice attached"),
}
WATCHDOG = {
    "healthy": {"time": "0", "service": "Postfix", "lvl": "100", "hpnow": "8", "hptotal": "8", "hpdiff": "0"},
    "degraded": {"time": "0", "service": "Dovecot", "lvl": "92", "hpnow": "11", "hptotal": "12", "hpdiff": "-1"},
    "error_limit": {"time": "0", "message": "PHP FPM hit error limit"},
}
ACME = {
    "validated": {
        "time": "0",
        "message": "mail.example.org - Certificates were successfully validated, no changes or renewals required, "
        "sleeping for another day.",
    },
    "retrying": {"time": "0", "message": "mail.example.org - Some errors occurred, retrying in 30 minutes..."},
}
API = {
    "get": {"time": 0, "uri": "/api/v1/get/logs/api/2", "method": "GET", "remote": "203.0.113.5", "data": ""},
    "post": {
        "time": 0,
        "uri": "/api/v1/edit/qitem",
        "method": "POST",
        "remote": "203.0.113.5",
        "data": 'attr=\'{"action":"release"}\', items=\'["33"]\'',
    },
}
AUTODISCOVER = {
    "ok": {
        "time": 0,
        "ua": "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
        "user": "awesome@example.org",
        "ip": "203.0.113.20",
        "service": "activesync",
    },
    "error": {
        "time": 0,
        "ua": "Microsoft Office/16.0",
        "user": "none",
        "ip": "198.51.100.9",
        "service": "Error: invalid or missing request data",
    },
}
ITEMS: dict[str, dict[str, dict[str, Any]]] = {
    "postfix": POSTFIX,
    "dovecot": DOVECOT,
    "sogo": SOGO,
    "netfilter": NETFILTER,
    "ratelimited": RATELIMITED,
    "rspamd-history": RSPAMD,
    "watchdog": WATCHDOG,
    "acme": ACME,
    "api": API,
    "autodiscover": AUTODISCOVER,
}
_TIME_KEY = {"rspamd-history": "unix_time"}
_INT_TIMES = {"netfilter", "ratelimited", "rspamd-history", "api", "autodiscover"}


def timed(service: str, item: dict[str, Any], epoch: int) -> dict[str, Any]:
    """The item at `epoch`, typed as mailcow types that list's time (string or int)."""
    return {**item, _TIME_KEY.get(service, "time"): epoch if service in _INT_TIMES else str(epoch)}


def store(pool: Any, service: str, newest_first: list[dict[str, Any]]) -> int:
    """Store one fetched window (newest first, as mailcow answers) like the ingestion; return new lines."""
    rows = raw_service.rows(service, number_window(service, newest_first))
    assert not rows.unparsed, rows.unparsed
    with pool.connection() as conn, conn.transaction():
        return raw_service.store_rows(conn, rows)


def store_all(pool: Any, end: int | None = None, spacing: int = 7) -> dict[tuple[str, str], int]:
    """Every item above, `spacing` seconds apart and ending at `end`; returns (service, name) -> epoch."""
    end = end or int(time.time()) - 60
    at: dict[tuple[str, str], int] = {}
    for service, items in ITEMS.items():
        names = list(items)
        window = []
        for i, name in enumerate(names):
            epoch = end - spacing * (len(names) - 1 - i)
            at[service, name] = epoch
            window.append(timed(service, items[name], epoch))
        store(pool, service, window[::-1])
    return at


def clear(pool: Any) -> None:
    with pool.connection() as conn:
        conn.execute("TRUNCATE raw_lines, raw_line_blocks, raw_line_counts")
