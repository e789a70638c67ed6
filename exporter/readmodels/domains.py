"""mailcow's domains with their DNS checks: the REST shapes of `/api/domains` (seed 002) and the
Grafana table of the last SPF / DKIM / DMARC check per domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.parsers.flags import is_set
from exporter.readmodels.args import Args
from exporter.readmodels.format import iso, ms
from exporter.store import domains as domain_store
from exporter.store.domains import DnsCheck

UNKNOWN = {"status": "unknown", "message": "Not checked yet"}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _checks(row: DnsCheck | None) -> dict[str, Any]:
    if row is None:
        return {"spf": UNKNOWN, "dkim": UNKNOWN, "dmarc": UNKNOWN, "checked_at": None, "is_full_check": None}
    return {
        "spf": row.spf,
        "dkim": row.dkim,
        "dmarc": row.dmarc,
        "checked_at": iso(row.checked_at),
        "is_full_check": row.is_full_check,
    }


def domain_name(d: dict[str, Any]) -> str:
    """A mailcow domain's name as the checks key it."""
    return str(d.get("domain_name", "")).lower()


def _domain(d: dict[str, Any], checks: dict[str, DnsCheck]) -> dict[str, Any]:
    name = domain_name(d)
    return {
        "domain_name": name,
        "active": is_set(d.get("active", 1)),
        "mboxes_in_domain": _int(d.get("mboxes_in_domain")),
        "mboxes_left": _int(d.get("mboxes_left")),
        "max_num_mboxes_for_domain": _int(d.get("max_num_mboxes_for_domain")),
        "aliases_in_domain": _int(d.get("aliases_in_domain")),
        "aliases_left": _int(d.get("aliases_left")),
        "max_num_aliases_for_domain": _int(d.get("max_num_aliases_for_domain")),
        "created": (str(d["created"]).replace(" ", "T") + "Z") if d.get("created") else None,
        "bytes_total": _int(d.get("bytes_total")),
        "msgs_total": _int(d.get("msgs_total")),
        "quota_used_in_domain": str(d.get("quota_used_in_domain", "0")),
        "max_quota_for_domain": _int(d.get("max_quota_for_domain")),
        "backupmx": is_set(d.get("backupmx")),
        "relay_all_recipients": is_set(d.get("relay_all_recipients")),
        "relay_unknown_only": is_set(d.get("relay_unknown_only")),
        "dns_checks": _checks(checks.get(name)),
    }


def all_domains(
    mailcow_domains: list[dict[str, Any]], checks: dict[str, DnsCheck], last: datetime | None
) -> dict[str, Any]:
    """mailcow's domains with their last DNS check results, and when all were last checked together."""
    domains = [_domain(d, checks) for d in mailcow_domains]
    return {
        "total": len(domains),
        "active": sum(1 for d in domains if d["active"]),
        "last_dns_check": iso(last),
        "domains": domains,
    }


def active_names(mailcow_domains: list[dict[str, Any]]) -> list[str]:
    return [domain_name(d) for d in mailcow_domains if is_set(d.get("active", 1))]


def checked_all(outcome: dict[str, Any]) -> dict[str, Any]:
    """The answer to a check of every active domain."""
    checked = len(outcome["results"])
    return {
        "status": "success" if not outcome["errors"] else "partial",
        "message": f"Checked {checked} domains",
        "domains_checked": checked,
        "errors": outcome["errors"],
    }


def checked_one(domain: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "message": f"DNS checked for {domain}", "data": result}


def dns_checks(pool: ConnectionPool, args: Args) -> list[dict]:
    """The last SPF / DKIM / DMARC check of every domain, status and message side by side."""
    rows = []
    for domain, r in sorted(domain_store.checks(pool).items()):
        if args.domain and domain != args.domain.lower():
            continue
        rows.append(
            {
                "domain": domain,
                "spf_status": r.spf.get("status"),
                "spf_message": r.spf.get("message"),
                "spf_lookups": r.spf.get("dns_lookups"),
                "dkim_status": r.dkim.get("status"),
                "dkim_message": r.dkim.get("message"),
                "dmarc_status": r.dmarc.get("status"),
                "dmarc_policy": r.dmarc.get("policy"),
                "dmarc_message": r.dmarc.get("message"),
                "warnings": "; ".join(
                    [*r.spf.get("warnings", []), *r.dkim.get("warnings", []), *r.dmarc.get("warnings", [])]
                ),
                "checked": ms(r.checked_at),
                "full_check": r.is_full_check,
            }
        )
    return rows
