"""Domain, mailbox, alias and DKIM objects with mailcow's exact key order and types (§2.7-2.10)."""

from __future__ import annotations

from typing import Any

from exporter.simulator.state import ALIASES, DKIM_PUBKEY, LOCAL_DOMAINS, MAILBOXES, MailcowState

GIB = 1024**3


def domain_details(state: MailcowState, domain: str) -> dict[str, Any]:
    boxes = [a for a, _ in MAILBOXES if a.endswith("@" + domain)]
    aliases = [a for a in ALIASES if a.endswith("@" + domain)]
    used = sum(state.mailbox_usage[a]["quota_used"] for a in boxes)
    msgs = sum(state.mailbox_usage[a]["messages"] for a in boxes)
    return {
        "max_new_mailbox_quota": 7 * GIB,
        "def_new_mailbox_quota": 3 * GIB,
        "quota_used_in_domain": str(len(boxes) * 3 * GIB),
        "bytes_total": str(used) if used else 0,
        "msgs_total": str(msgs) if msgs else 0,
        "mboxes_in_domain": len(boxes),
        "mboxes_left": 10 - len(boxes),
        "domain_name": domain,
        "domain_h_name": domain,
        "description": f"{domain} mail",
        "max_num_aliases_for_domain": 400,
        "max_num_mboxes_for_domain": 10,
        "def_quota_for_mbox": 3 * GIB,
        "max_quota_for_mbox": 10 * GIB,
        "max_quota_for_domain": 10 * GIB,
        "relayhost": "0",
        "backupmx": 0,
        "backupmx_int": 0,
        "gal": 1,
        "gal_int": 1,
        "rl": {"value": "100", "frame": "h"} if domain == LOCAL_DOMAINS[1] else False,
        "active": 1,
        "active_int": 1,
        "relay_all_recipients": 0,
        "relay_all_recipients_int": 0,
        "relay_unknown_only": 0,
        "relay_unknown_only_int": 0,
        "created": "2024-01-10 12:00:00",
        "modified": None if domain == LOCAL_DOMAINS[1] else "2026-07-01 08:30:11",
        "aliases_in_domain": len(aliases),
        "aliases_left": 400 - len(aliases),
        "domain_admins": "-",
        **({"tags": ["prod"]} if domain == LOCAL_DOMAINS[0] else {}),
    }


def mailbox_details(state: MailcowState, username: str, name: str, reduced: bool = False) -> dict[str, Any]:
    usage = state.mailbox_usage[username]
    quota = 0 if username.startswith("ops@") else 3 * GIB
    percent: int | str = round(usage["quota_used"] * 100 / quota) if quota else "- "
    if not quota:
        percent_class = "info"
    elif percent >= 90:  # type: ignore[operator]
        percent_class = "danger"
    elif percent >= 75:  # type: ignore[operator]
        percent_class = "warning"
    else:
        percent_class = "success"
    local, domain = username.split("@")
    row: dict[str, Any] = {
        "username": username,
        "active": 1,
        "active_int": 1,
        "domain": domain,
        "name": name,
        "local_part": local,
        "quota": quota,
        "messages": usage["messages"],
        "attributes": {
            "force_pw_update": "0",
            "force_tfa": "0",
            "tls_enforce_in": "0",
            "tls_enforce_out": "0",
            "sogo_access": "1",
            "imap_access": "1",
            "pop3_access": "0",
            "smtp_access": "1",
            "sieve_access": "1",
            "eas_access": "1",
            "dav_access": "1",
            "relayhost": "0",
            "passwd_update": 1704888300 if local == "dave" else "2026-05-02 10:11:12",
            "mailbox_format": "maildir:",
            "quarantine_notification": "hourly",
            "quarantine_category": "reject",
            "attribute_hash": "",
        },
        "custom_attributes": [],
        "quota_used": usage["quota_used"],
        "percent_in_use": percent,
        "created": "2024-01-10 12:05:00",
        "modified": "2026-05-02 10:11:12",
        "authsource": "mailcow",
        "percent_class": percent_class,
        "last_imap_login": usage["last_imap_login"],
        "last_smtp_login": usage["last_smtp_login"],
        "last_pop3_login": 0,
        "last_sso_login": 0,
    }
    if not reduced:
        row.update(
            {
                "max_new_quota": 10 * GIB,
                "spam_aliases": 0,
                "pushover_active": 0,
                "rl": False,
                "rl_scope": "domain",
                "is_relayed": 0,
                "sender_acl": [],
            }
        )
    if local == "info":
        row["tags"] = ["staff"]
    return row


def alias_details(alias_id: int, address: str, targets: tuple[str, ...]) -> dict[str, Any]:
    return {
        "in_primary_domain": "",
        "id": alias_id,
        "domain": address.split("@")[1],
        "public_comment": None,
        "private_comment": None,
        "goto": ",".join(targets),
        "address": address,
        "is_catch_all": 0,
        "internal": 0,
        "active": 1,
        "active_int": 1,
        "sogo_visible": 1,
        "sogo_visible_int": 1,
        "sender_allowed": 1,
        "created": "2024-01-10 12:10:00",
        "modified": None,
    }


def all_aliases() -> list[dict[str, Any]]:
    return [alias_details(i, a, t) for i, (a, t) in enumerate(ALIASES.items(), start=1)]


def dkim_details(domain: str) -> dict[str, Any]:
    if domain not in LOCAL_DOMAINS:
        return {}
    return {
        "pubkey": DKIM_PUBKEY,
        "length": "2048",
        "dkim_txt": f"v=DKIM1;k=rsa;t=s;s=email;p={DKIM_PUBKEY}",
        "dkim_selector": "dkim",
        "privkey": "",
    }
