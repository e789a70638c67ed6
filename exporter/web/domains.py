"""`/api/domains/all` and the DNS check triggers, with the shapes of seed 002."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from exporter.http import context
from exporter.http.errors import ApiError
from exporter.parsers.flags import is_set
from exporter.readmodels.mail import iso
from exporter.services.domains import checks as dns_checks
from exporter.store import domains as domain_store

bp = Blueprint("domains", __name__, url_prefix="/api/domains")
UNKNOWN = {"status": "unknown", "message": "Not checked yet"}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _checks(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"spf": UNKNOWN, "dkim": UNKNOWN, "dmarc": UNKNOWN, "checked_at": None, "is_full_check": None}
    return {
        "spf": row["spf"],
        "dkim": row["dkim"],
        "dmarc": row["dmarc"],
        "checked_at": iso(row["checked_at"]),
        "is_full_check": row["is_full_check"],
    }


def _domain(d: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    name = str(d.get("domain_name", "")).lower()
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


@bp.get("/all")
def all_domains() -> Response:
    """mailcow's domains now (cached a few seconds) with their last DNS check results."""
    accounts, _ = context.live().accounts()
    checks = domain_store.checks(context.pool())
    domains = [_domain(d, checks) for d in accounts["domains"]]
    last = domain_store.last_full_check(context.pool())
    return jsonify(
        {
            "total": len(domains),
            "active": sum(1 for d in domains if d["active"]),
            "last_dns_check": iso(last),
            "domains": domains,
        }
    )


def _active_domains() -> list[str]:
    accounts, _ = context.live().accounts()
    return [str(d.get("domain_name", "")).lower() for d in accounts["domains"] if is_set(d.get("active", 1))]


@bp.post("/check-all-dns")
def check_all() -> Response:
    """Check every active domain now (in parallel) and record a full check."""
    domains = _active_domains()
    outcome = dns_checks.run(context.config(), context.pool(), context.live().client, domains, full=True)
    checked = len(outcome["results"])
    return jsonify(
        {
            "status": "success" if not outcome["errors"] else "partial",
            "message": f"Checked {checked} domains",
            "domains_checked": checked,
            "errors": outcome["errors"],
        }
    )


@bp.post("/<string:domain>/check-dns")
def check_one(domain: str) -> Response:
    domain = domain.strip().lower().rstrip(".")
    if domain not in _active_domains():
        raise ApiError(404, "Not Found", f"{domain} is not an active mailcow domain", "UNKNOWN_DOMAIN")
    outcome = dns_checks.run(context.config(), context.pool(), context.live().client, [domain], full=False)
    if domain not in outcome["results"]:
        raise ApiError(502, "DNS check failed", "; ".join(outcome["errors"]) or "no result", "DNS_CHECK_FAILED")
    return jsonify({"status": "success", "message": f"DNS checked for {domain}", "data": outcome["results"][domain]})
