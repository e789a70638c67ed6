"""HTTP client for the mailcow API (`mailcow-api.md`), with typed errors.

Reads are retried with exponential backoff on timeouts, connection errors and 5xx; writes
change the mail server and are never retried automatically.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from exporter.mailcow.errors import (
    MailcowAuthError,
    MailcowBadResponse,
    MailcowForbidden,
    MailcowNotFound,
    MailcowReadOnly,
    MailcowServerError,
    MailcowTimeout,
    MailcowUnreachable,
)

log = logging.getLogger(__name__)

LOG_SERVICES = frozenset(
    {
        "postfix",
        "dovecot",
        "sogo",
        "netfilter",
        "ratelimited",
        "watchdog",
        "acme",
        "api",
        "autodiscover",
        "cron",
        "ui",
        "sasl",
        "rspamd-history",
        "rspamd-stats",
    }
)
MAILQ_ACTIONS = frozenset({"deliver", "hold", "unhold", "flush", "super_delete"})
QITEM_ACTIONS = frozenset({"release", "learnham", "learnspam"})


# a NUL as JSON escapes it: "\u0000" after an even number of backslashes (an odd one escapes the "\")
_ESCAPED_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def _without_nul(body: bytes) -> bytes:
    """The body with each escaped NUL turned into U+FFFD: PostgreSQL text cannot hold a NUL, and one
    in a log line (a sender-chosen subject, say) failed the COPY of its whole window on every fetch."""
    return _ESCAPED_NUL.sub(rb"\1\\ufffd", body) if b"\\u0000" in body else body


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("msg"), str):
            return body["msg"]
    except ValueError:
        pass
    text = response.text.strip()
    return text[:200] if text else f"HTTP {response.status_code}"


class MailcowClient:
    """One mailcow server; `api_key` for reads, `api_key_rw` (optional) for writes."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_key_rw: str | None = None,
        *,
        verify_tls: bool = True,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api_key = api_key
        self._api_key_rw = api_key_rw
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1/",
            verify=verify_tls,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json", "User-Agent": "mailcow-grafana"},
            transport=transport,
            follow_redirects=False,
        )

    @property
    def read_write(self) -> bool:
        return bool(self._api_key_rw)

    def close(self) -> None:
        self._http.close()

    # --- transport ------------------------------------------------------------------

    def _send(self, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        try:
            return self._http.request(
                method,
                path,
                headers={"X-API-Key": key, **({} if body is None else {"Content-Type": "application/json"})},
                content=None if body is None else json.dumps(body),
            )
        except httpx.TimeoutException as exc:
            raise MailcowTimeout(f"mailcow did not answer {method} {path} in time") from exc
        except httpx.TransportError as exc:
            raise MailcowUnreachable(f"cannot reach mailcow for {method} {path}: {exc}") from exc

    @staticmethod
    def _decode(response: httpx.Response, path: str) -> Any:
        status = response.status_code
        if status == 401:
            raise MailcowAuthError(f"mailcow rejected the API key: {_error_message(response)}", status)
        if status == 403:
            raise MailcowForbidden(f"mailcow denied {path}: {_error_message(response)}", status)
        if status == 404:
            raise MailcowNotFound(f"mailcow has no route {path}: {_error_message(response)}", status)
        if status >= 500:
            raise MailcowServerError(f"mailcow failed on {path} with HTTP {status}", status)
        if status != 200:
            raise MailcowBadResponse(f"mailcow answered {path} with HTTP {status}: {_error_message(response)}", status)
        if not response.content.strip():
            raise MailcowBadResponse(f"mailcow sent an empty body for {path} (API key not accepted?)", status)
        try:
            return json.loads(_without_nul(response.content))
        except ValueError as exc:
            raise MailcowBadResponse(f"mailcow sent a non-JSON body for {path}", status) from exc

    def get(self, path: str) -> Any:
        """GET with retries on timeouts, connection errors and 5xx."""
        attempt = 0
        while True:
            try:
                return self._decode(self._send("GET", path, self._api_key), path)
            except (MailcowTimeout, MailcowUnreachable, MailcowServerError) as exc:
                attempt += 1
                if attempt >= self._retries:
                    raise
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning("GET %s failed (%s); retry %d in %.1fs", path, exc, attempt, delay)
                self._sleep(delay)

    def post(self, path: str, body: Any) -> list[dict[str, Any]]:
        """One write call with the read-write key; never retried. Returns mailcow's item list."""
        if not self._api_key_rw:
            raise MailcowReadOnly("no read-write API key is configured (MAILCOW_API_KEY_RW)")
        result = self._decode(self._send("POST", path, self._api_key_rw, body), path)
        if isinstance(result, dict):
            result = [result]
        if not isinstance(result, list):
            raise MailcowBadResponse(f"unexpected answer to POST {path}")
        return result

    # --- reads ----------------------------------------------------------------------

    @staticmethod
    def _as_list(value: Any) -> list:
        """mailcow prints `{}` for an empty list."""
        if isinstance(value, list):
            return value
        if isinstance(value, dict) and not value:
            return []
        raise MailcowBadResponse(f"expected a list, got {type(value).__name__}")

    def logs(self, service: str, count: int | None = None, span: tuple[int, int] | None = None) -> list[dict]:
        """Newest-first log items: the newest `count`, or positions `from-to` (mailcow-api.md §1.2)."""
        if service not in LOG_SERVICES:
            raise ValueError(f"unknown mailcow log service {service!r}")
        path = f"get/logs/{service}"
        if span is not None:
            start, end = span
            if start < 1 or end < start:
                raise ValueError("range must satisfy 1 <= from <= to")
            path += f"/{start}-{end}"
        elif count is not None:
            if count < 1:
                raise ValueError("count must be >= 1")
            path += f"/{count}"
        return self._as_list(self.get(path))

    def mail_queue(self) -> list[dict]:
        return self._as_list(self.get("get/mailq/all"))

    def quarantine(self) -> list[dict]:
        return self._as_list(self.get("get/quarantine/all"))

    def domains(self) -> list[dict]:
        return self._as_list(self.get("get/domain/all"))

    def mailboxes(self) -> list[dict]:
        return self._as_list(self.get("get/mailbox/all"))

    def aliases(self) -> list[dict]:
        return self._as_list(self.get("get/alias/all"))

    def dkim(self, domain: str) -> dict:
        result = self.get(f"get/dkim/{quote(domain, safe='')}")
        return result if isinstance(result, dict) else {}

    def containers(self) -> dict:
        return self.get("get/status/containers")

    def vmail(self) -> dict:
        return self.get("get/status/vmail")

    def version(self) -> str:
        return str(self.get("get/status/version").get("version", ""))

    def server_ips(self) -> list[str]:
        """mailcow's public IPv4 and IPv6 addresses (`false` when its lookup failed)."""
        answer = self.get("get/status/host/ip")
        return [str(v) for v in (answer.get("ipv4"), answer.get("ipv6")) if v] if isinstance(answer, dict) else []

    def fail2ban(self) -> dict:
        return self.get("get/fail2ban")

    # --- writes ---------------------------------------------------------------------

    def edit_mail_queue(self, action: str, items: Sequence[str]) -> list[dict[str, Any]]:
        if action not in MAILQ_ACTIONS:
            raise ValueError(f"unknown queue action {action!r}")
        return self.post("edit/mailq", {"items": list(items), "attr": {"action": action}})

    def delete_from_queue(self, items: Sequence[str]) -> list[dict[str, Any]]:
        return self.post("delete/mailq", list(items))

    def edit_quarantine(self, action: str, items: Sequence[str]) -> list[dict[str, Any]]:
        if action not in QITEM_ACTIONS:
            raise ValueError(f"unknown quarantine action {action!r}")
        return self.post("edit/qitem", {"items": [str(i) for i in items], "attr": {"action": action}})

    def delete_from_quarantine(self, items: Sequence[str]) -> list[dict[str, Any]]:
        return self.post("delete/qitem", [str(i) for i in items])
