"""The rest of a busy mailcow's logging: mailbox logins, webmail, rate limits, health checks, certificates,
API calls and autodiscover, each in its list's real shape (mailcow-api.md §1.3-1.9, texts from §3).

These lists have no per-mail ground truth; what counts for them is that every line is one mailcow writes
and that their volume follows the mail rate (so the busiest rate fills every capped list), while the
watchdog and ACME keep their own clocks. One seeded generator drives all of it, apart from the mail
traffic's, so the same seed gives the same lines and the mail traffic is the same with or without them.
"""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections.abc import Callable
from typing import Any

from exporter.simulator import phpjson
from exporter.simulator.dovecot import syslog_item
from exporter.simulator.state import MAILBOXES

HOSTNAME = "mail.example.org"  # MAILCOW_HOSTNAME
DOVECOT_IP, SOGO_IP = "172.22.1.250", "172.22.1.248"
TLS = "TLS, TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
ADMIN_CLIENT = "203.0.113.5"  # a script using the API key
CLIENTS = ("203.0.113.20", "198.51.100.9", "91.64.12.77", "2001:db8:4f::21", "84.132.7.190", "185.22.9.14")
GUESSERS = ("193.46.255.40", "92.118.38.52", "45.82.153.21", "80.94.95.115")
USER_AGENTS = (
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "Microsoft Office/16.0",
    "Thunderbird/128.5.0",
    "Apple-iPhone15C2/2201.107",
    None,
)
AUTODISCOVER_ERRORS = (
    "Error: invalid or missing request data",
    "Error: could not parse email from request",
    "Error: mailbox not found or inactive",
)
# watchdog health checks and their thresholds (hptotal, docker-compose defaults)
HEALTH_CHECKS = (
    ("Nginx", 5),
    ("Unbound", 5),
    ("Redis", 5),
    ("MySQL/MariaDB", 5),
    ("SOGo", 3),
    ("Postfix", 8),
    ("Postfix TLS Policy companion", 8),
    ("Clamd", 15),
    ("Dovecot", 12),
    ("PHP-FPM", 5),
    ("Ratelimit", 1),
    ("Mail queue", 20),
    ("Fail2ban", 1),
    ("ACME", 1),
    ("Rspamd", 5),
    ("Olefy", 5),
    ("External checks", 1),
)
WATCHDOG_MESSAGES = (
    "At least one ratelimit was applied",
    "Container is running for less than 360 seconds, skipping action...",
    "Not sending notification email now, blocked for 3412 seconds...",
    "Sent notification email to admin@example.org",
    "Banned 193.46.255.40/32",
)
SOGO_PAGES = (
    ("POST", "/SOGo/so/{user}/Mail/0/folderINBOX/changes"),
    ("POST", "/SOGo/so/{user}/Mail/0/folderINBOX/uids"),
    ("GET", "/SOGo/so/{user}/Mail/view"),
    ("POST", "/SOGo/so/{user}/Calendar/alarmslist"),
    ("GET", "/SOGo/so/{user}/Contacts/personal/view"),
)
Schedule = Callable[[float, Callable[[], None]], None]
Push = Callable[[str, dict[str, Any]], None]


def api_log_data(body: Any) -> str:
    """`api_log()`'s `data`: the POST fields as `key='<json>'` joined by `, `, any key matching /pass/i
    (inside a field's JSON, or a field itself) masked as "*" (mailcow-api.md §1.9)."""
    if not isinstance(body, dict):
        return f"items='{phpjson.encode(body)}'" if body is not None else ""
    parts = []
    for key, value in body.items():
        if re.search("pass", str(key), re.I):
            value = "*"
        elif isinstance(value, dict):
            value = {k: "*" if re.search("pass", str(k), re.I) else v for k, v in value.items()}
        parts.append(f"{key}='{value if isinstance(value, str) else phpjson.encode(value)}'")
    return ", ".join(parts)


class Background:
    """Schedules the non-mail services' lines into the simulation's event queue, up to a moment."""

    def __init__(self, seed: int, start: int, schedule: Schedule, push: Push) -> None:
        self.rng = random.Random(f"services-{seed}")
        self.schedule, self.push = schedule, push
        self._pids = itertools.count(20_000)
        # stream -> (lines per minute at `rate` mails/min, emitter)
        self._streams: dict[str, tuple[Callable[[float], float], Callable[[int], None]]] = {
            "imap": (lambda r: 0.4 * r + 2, self._imap_session),
            "pop3": (lambda r: 0.04 * r + 0.2, self._pop3_session),
            "auth_failure": (lambda r: 0.05 * r + 0.5, self._auth_failure),
            "sogo": (lambda r: 0.3 * r + 1, self._sogo),
            "sogo_probe": (lambda r: 2.0, self._sogo_probe),
            "ratelimited": (lambda r: r / 60 + 0.02, self._ratelimited),
            "autodiscover": (lambda r: r / 15 + 0.1, self._autodiscover),
            "api": (lambda r: r / 300 + 3, self._api),
            "watchdog": (lambda r: 12.0, self._watchdog_health),
            "watchdog_message": (lambda r: 0.03, self._watchdog_message),
            "acme": (lambda r: 1 / 60, self._acme_check),
        }
        self._next = {name: start + self.rng.uniform(0, 5) for name in self._streams}
        self._next["acme"] = start + self.rng.uniform(1800, 3600)  # the start-up check comes first
        self._started = False

    def generate(self, until: int, rate: float) -> None:
        """Schedule every line due up to `until` at `rate` mails per minute (0: mailcow is idle)."""
        if rate <= 0:
            return
        if not self._started:
            self._started = True
            self._acme_start(int(min(self._next.values())))
        for name, (per_minute, emit) in self._streams.items():
            lam = per_minute(rate) / 60.0
            while self._next[name] <= until:
                emit(int(self._next[name]))
                self._next[name] += self.rng.expovariate(lam)

    # --- helpers -------------------------------------------------------------------------

    def _at(self, when: float, service: str, item: dict[str, Any]) -> None:
        self.schedule(when, lambda: self.push(service, item))

    def _dovecot(self, when: float, message: str, priority: str = "info") -> None:
        self._at(when, "dovecot", syslog_item(when, message, priority))

    def _sogo_line(self, when: float, text: str) -> None:
        self._at(when, "sogo", syslog_item(when, f"[{self.rng.randrange(60, 3000)}]: {text}", "notice", "sogod"))

    def _session(self, length: int = 16) -> str:
        chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return "".join(self.rng.choice(chars) for _ in range(length))

    def _user(self) -> str:
        return self.rng.choice(MAILBOXES)[0]

    # --- dovecot ---------------------------------------------------------------------------

    def _login(self, at: int, protocol: str, user: str, rip: str) -> int:
        """`<proto>-login: Login:` with mailcow's login_log_format_elements; returns the mail process pid."""
        mpid = next(self._pids)
        secured = "" if rip == SOGO_IP else f", {TLS}"  # SOGo talks to Dovecot in plain text inside the network
        self._dovecot(
            at,
            f"{protocol}-login: Login: user=<{user}>, method=PLAIN, rip={rip}, lip={DOVECOT_IP}, mpid={mpid}{secured}",
        )
        return mpid

    def _imap_session(self, at: int, user: str | None = None, rip: str | None = None) -> None:
        user = user or self._user()
        rip = rip or self.rng.choice((SOGO_IP, *CLIENTS))
        mpid = self._login(at, "imap", user, rip)
        out = self.rng.randrange(400, 200_000)
        self._dovecot(
            at + self.rng.randrange(2, 900),
            f"imap({user})<{mpid}><{self._session()}>: Disconnected: Logged out in={self.rng.randrange(100, 5000)} "
            f"out={out} deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0",
        )

    def _pop3_session(self, at: int) -> None:
        user = self._user()
        mpid = self._login(at, "pop3", user, self.rng.choice(CLIENTS))
        count = self.rng.randrange(0, 4)
        size = count * self.rng.randrange(2_000, 80_000)
        self._dovecot(
            at + self.rng.randrange(1, 20),
            f"pop3({user})<{mpid}><{self._session()}>: Disconnected: Logged out top=0/0, retr={count}/{size}, "
            f"del={count}/{count}, size={size}",
        )

    def _auth_failure(self, at: int) -> None:
        """A wrong password: the auth worker's mismatch, then the login process giving up."""
        user = self.rng.choice((self._user(), "admin@example.org", "test@example.net"))
        rip = self.rng.choice(GUESSERS + CLIENTS[:2])
        protocol = self.rng.choice(("imap", "imap", "pop3"))
        session = self._session()
        self._dovecot(
            at,
            f"auth-worker({self.rng.randrange(100, 2000)}): conn unix:auth-worker (pid={self.rng.randrange(100, 300)}"
            f",uid=401): auth-worker<{self.rng.randrange(1, 9)}>: lua({user},{rip},<{session}>): Password mismatch "
            f"(SHA1 of given password: {self.rng.getrandbits(24):06x})",
        )
        secs = self.rng.randrange(1, 9)
        tail = f"user=<{user}>, method=PLAIN, rip={rip}, lip={DOVECOT_IP}, TLS, session=<{session}>"
        if self.rng.random() < 0.75:  # Dovecot 2.3.21
            text = f"Login aborted: Connection closed (auth failed, 1 attempts in {secs} secs) (auth_failed): {tail}"
        else:  # the older wording
            text = f"Disconnected (auth failed, 1 attempts in {secs} secs): {tail}"
        self._dovecot(at + secs, f"{protocol}-login: {text}")

    # --- sogo ------------------------------------------------------------------------------

    def _sogo(self, at: int) -> None:
        user, ip = self._user(), self.rng.choice(CLIENTS)
        roll = self.rng.random()
        if roll < 0.12:
            self._sogo_line(
                at, f"SOGoRootPage successful login from '{ip}' for user '{user}' - expire = -1  grace = -1"
            )
            self._imap_session(at, user, SOGO_IP)
        elif roll < 0.17:
            ip = self.rng.choice(GUESSERS)
            self._sogo_line(
                at,
                f"SOGoRootPage Login from '{ip}' for user '{user}' might not have worked - password policy: 65535  "
                "grace: -1  expire: -1  bound: 0",
            )
        elif roll < 0.18:
            self._sogo_line(at, "[ERROR] <0x0x561fc00a9920[NGImap4ConnectionManager]> IMAP4 login failed:")
        else:
            method, path = self.rng.choice(SOGO_PAGES)
            size = self.rng.randrange(60, 40_000)
            self._sogo_line(
                at,
                f'{ip} "{method} {path.format(user=user)} HTTP/1.1" 200 {size}/{self.rng.randrange(0, 900)} '
                f"{self.rng.uniform(0.002, 0.4):.3f} - - 0",
            )

    def _sogo_probe(self, at: int) -> None:
        self._sogo_line(
            at,
            'mailcowdockerized_watchdog-mailcow_1.mailcowdockerized_mailcow-network "GET /SOGo.index/ HTTP/1.1" '
            f"200 2531/0 {self.rng.uniform(0.003, 0.02):.3f} - - 0",
        )

    # --- ratelimited, autodiscover, api ----------------------------------------------------

    def _ratelimited(self, at: int) -> None:
        user = self._user()
        rl_hash = "RL" + "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))
        rcpts = self.rng.sample(("hello@example.com", "second@example.net", "k.meier@web.de", "j.doe@gmail.com"), 2)
        self._at(
            at,
            "ratelimited",
            {
                "time": at,
                "rcpt": ", ".join(rcpts[: self.rng.choice((1, 2))]),
                "from": user,
                "user": user if self.rng.random() < 0.9 else None,
                "rl_info": f"mailcow({rl_hash})",
                "rl_name": "mailcow",
                "rl_hash": rl_hash,
                "qid": "".join(self.rng.choice("0123456789ABCDEF") for _ in range(self.rng.choice((10, 11, 12)))),
                "ip": self.rng.choice((SOGO_IP, *CLIENTS)),
                "message_id": f"{self.rng.getrandbits(32):x}-{self.rng.getrandbits(32):08x}@{user.split('@')[1]}",
                "header_subject": self.rng.choice(("Newsletter December", "Invitation", "Re: offer", "Reminder")),
                "header_from": f'"{dict(MAILBOXES)[user]}" <{user}>',
            },
        )

    def _autodiscover(self, at: int) -> None:
        error = self.rng.random() < 0.1
        self._at(
            at,
            "autodiscover",
            {
                "time": at,
                "ua": self.rng.choice(USER_AGENTS),
                "user": "none" if error else self._user(),
                "ip": self.rng.choice(CLIENTS),
                "service": self.rng.choice(AUTODISCOVER_ERRORS) if error else self.rng.choice(("activesync", "imap")),
            },
        )

    def _api(self, at: int) -> None:
        roll = self.rng.random()
        if roll < 0.75:
            uri = self.rng.choice(
                ("/api/v1/get/status/containers", "/api/v1/get/mailbox/all", "/api/v1/get/logs/postfix/100")
            )
            method, body = "GET", None
        elif roll < 0.9:
            uri, method = "/api/v1/edit/qitem", "POST"
            body = {"items": [str(self.rng.randrange(1, 500))], "attr": {"action": "release"}}
        else:
            uri, method = "/api/v1/edit/mailbox", "POST"
            user = self._user()
            body = {"items": [user], "attr": {"password": "S3cret-pw", "password2": "S3cret-pw", "active": "1"}}
        self._at(
            at,
            "api",
            {"time": at, "uri": uri, "method": method, "remote": ADMIN_CLIENT, "data": api_log_data(body)},
        )

    # --- watchdog and acme ------------------------------------------------------------------

    def _watchdog_health(self, at: int) -> None:
        service, total = self.rng.choice(HEALTH_CHECKS)
        now = total - (1 if total > 1 and self.rng.random() < 0.08 else 0)
        diff = "-1" if now < total else self.rng.choice(("0", "0", "0", "1")) if total > 1 else "0"
        item = {
            "time": str(at),
            "service": service,
            "lvl": str(round(now * 100 / total)),
            "hpnow": str(now),
            "hptotal": str(total),
            "hpdiff": diff,
        }
        self._at(at, "watchdog", item)

    def _watchdog_message(self, at: int) -> None:
        self._at(at, "watchdog", {"time": str(at), "message": self.rng.choice(WATCHDOG_MESSAGES)})

    def _acme(self, when: float, text: str) -> None:
        self._at(when, "acme", {"time": str(int(when)), "message": f"{HOSTNAME} - {text}"})

    def _acme_start(self, at: int) -> None:
        """The acme container (re)started: waits for its dependencies, then checks the certificate."""
        for n, text in enumerate(
            (
                "Waiting for Docker API...",
                "Docker API OK",
                "Waiting for Postfix...",
                "Postfix OK",
                "Waiting for Dovecot...",
                "Dovecot OK",
                "Waiting for database...",
                "Database OK",
                "Waiting for Nginx...",
                "Nginx OK",
                "Waiting for resolver...",
                "Resolver OK",
                "Initializing, please wait...",
                "Using existing domain rsa key /var/lib/acme/acme/key.pem",
                "Using existing Lets Encrypt account key /var/lib/acme/acme/account.pem",
            )
        ):
            self._acme(at + n // 2, text)
        self._acme_check(at + 8)

    def _acme_check(self, at: int) -> None:
        """A certificate check; now and then a renewal, whose acme-tiny output is logged base64-encoded."""
        cert = f"/var/lib/acme/{HOSTNAME}/cert.pem"
        self._acme(at, f"Found A record for {HOSTNAME}: 203.0.113.10")
        roll = self.rng.random()
        if roll < 0.25:
            self._acme(at + 1, f"Certificate {cert} is due for renewal (< 30 days) - start renewing")
            response = (
                "Parsing account key...\nRegistering account...\nAlready registered!\n"
                f"Verifying {HOSTNAME}...\n{HOSTNAME} verified!\nSigning certificate...\nCertificate signed!\n"
            )
            encoded = base64.b64encode(response.encode()).decode()
            self._at(at + 9, "acme", {"time": str(at + 9), "message": f"base64,{HOSTNAME} - {encoded}"})
            self._acme(at + 9, "Certificate successfully obtained")
        elif roll < 0.3:
            self._acme(at + 2, "Some errors occurred, retrying in 30 minutes...")
            return
        else:
            self._acme(at + 1, f"Certificate {cert} validation done, neither changed nor due for renewal.")
        self._acme(
            at + 10,
            "Certificates were successfully validated, no changes or renewals required, sleeping for another day.",
        )
